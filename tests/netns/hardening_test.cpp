// What flowtop changes comes back whatever happens (kill -9 in batch and in the live view, two
// flowtops, an administrator), and a running flowtop holds only the capabilities it uses.
// Real kernel settings, inside test namespaces with both settings at 0 first.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "harness.hpp"

using namespace flowtop::test;
namespace fs = std::filesystem;

namespace {

const char* k_acct = "net.netfilter.nf_conntrack_acct";
const char* k_ts = "net.netfilter.nf_conntrack_timestamp";

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (done()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return done();
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

// "Name:\tvalue" of /proc/PID[/task/TID]/status.
std::string status_field(const std::string& status_path, const std::string& field) {
    std::istringstream in(read_text(status_path));
    for (std::string line; std::getline(in, line);)
        if (line.rfind(field + ":", 0) == 0) {
            std::string value = line.substr(field.size() + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            return value;
        }
    return "";
}

std::string comm_of(pid_t pid) {
    return trimmed(read_text("/proc/" + std::to_string(pid) + "/comm"));
}

// flowtop's guardian: its child named flowtop-guard.
pid_t guardian_of(pid_t flowtop) {
    std::istringstream in(read_text("/proc/" + std::to_string(flowtop) + "/task/" +
                                    std::to_string(flowtop) + "/children"));
    for (pid_t child; in >> child;)
        if (comm_of(child) == "flowtop-guard") return child;
    return -1;
}

bool gone(pid_t pid) {
    // A zombie (not yet reaped by its new parent) has done all it will do.
    const std::string state = status_field("/proc/" + std::to_string(pid) + "/status", "State");
    return state.empty() || state[0] == 'Z';
}

// The pid of the process named `comm` in namespace ns.
pid_t pid_in(const Namespace& ns, const std::string& comm) {
    std::string out;
    sh("ip netns pids " + ns.name(), &out);
    std::istringstream in(out);
    for (pid_t pid; in >> pid;)
        if (comm_of(pid) == comm) return pid;
    return -1;
}

class Hardening : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const Namespace* ns : {&net.a, &net.b}) {
            ns->set_sysctl(k_acct, "0");
            ns->set_sysctl(k_ts, "0");
        }
    }
    void expect_settings(const std::string& acct, const std::string& ts) {
        EXPECT_TRUE(eventually([&] { return net.a.sysctl(k_acct) == acct; })) << "acct";
        EXPECT_EQ(net.a.sysctl(k_acct), acct);
        EXPECT_EQ(net.a.sysctl(k_ts), ts);
    }
    TestNet net;
};

// A tmux session running a script, removed at the end.
class Tmux {
  public:
    // script: the shell script to run, given the session's own directory.
    explicit Tmux(const std::function<std::string(const std::string&)>& script) {
        static int counter = 0;
        name_ = "fthard" + std::to_string(getpid()) + "x" + std::to_string(counter++);
        dir_ = "/tmp/" + name_;
        fs::create_directories(dir_);
        std::ofstream(dir_ + "/run.sh") << script(dir_);
        must("tmux new-session -d -s " + name_ + " -x 120 -y 40 'sh " + dir_ + "/run.sh'");
    }
    ~Tmux() {
        sh("tmux kill-session -t " + name_ + " 2>/dev/null");
        fs::remove_all(dir_);
    }
    const std::string& dir() const { return dir_; }
    std::string screen() const {
        std::string out;
        sh("tmux capture-pane -p -t " + name_, &out);
        return out;
    }
    // A tmux format of the pane: alternate_on, cursor_flag, mouse_standard_flag, ...
    std::string flag(const std::string& format) const {
        std::string out;
        sh("tmux display-message -p -t " + name_ + " '#{" + format + "}'", &out);
        return trimmed(out);
    }
    bool wait_for(const std::string& text, std::chrono::milliseconds timeout = 8s) const {
        return eventually([&] { return screen().find(text) != std::string::npos; }, timeout);
    }
    void keys(const std::string& k) const { must("tmux send-keys -t " + name_ + " " + k); }

  private:
    std::string name_, dir_;
};

}  // namespace

TEST_F(Hardening, GuardianPutsBackBothSettingsAfterKill9InBatch) {
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    EXPECT_EQ(net.a.sysctl(k_ts), "1");
    const pid_t guardian = guardian_of(ft.pid());
    ASSERT_GT(guardian, 0) << "no guardian process";
    ft.signal(SIGKILL);
    const int status = ft.wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    expect_settings("0", "0");
    EXPECT_TRUE(eventually([&] { return gone(guardian); })) << "the guardian outlived its work";
    EXPECT_NE(ft.stderr_text().find("its guardian did"), std::string::npos) << ft.stderr_text();
}

// The live view in a terminal: flowtop gets SIGKILL, so only the guardian can put the
// terminal back; the shell then saves the terminal's modes (once the test says so). With
// `hold_status`, the shell reports the exit status only once the test says so too: a shell
// learns of the kill at once, and what it prints before the guardian has left the alternate
// screen goes with that screen.
std::string live_view_script(const Namespace& ns, const std::string& dir,
                             const std::string& args = "", bool hold_status = false) {
    const std::string hold =
        hold_status ? "while [ ! -e " + dir + "/report ]; do sleep 0.1; done\n" : "";
    return "stty -g > " + dir + "/before\n" + ns.exec(std::string(FLOWTOP_BINARY) + " " + args) +
           "\nrc=$?\n" + hold + "echo EXITED $rc\n" + "while [ ! -e " + dir +
           "/go ]; do sleep 0.1; done\nstty -g > " + dir + "/after\necho SAVED\nsleep 60\n";
}

TEST_F(Hardening, GuardianPutsBackSettingsAndTerminalAfterKill9InLiveView) {
    Tmux tmux([&](const std::string& dir) { return live_view_script(net.a, dir, "-t 0.3", true); });
    ASSERT_TRUE(tmux.wait_for("DESTINATION")) << tmux.screen();
    // What the kill must undo is really there.
    EXPECT_EQ(tmux.flag("alternate_on"), "1");
    EXPECT_EQ(tmux.flag("mouse_standard_flag"), "1");
    EXPECT_EQ(tmux.flag("cursor_flag"), "0");
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    const pid_t flowtop = pid_in(net.a, "flowtop");
    ASSERT_GT(flowtop, 0);
    const pid_t guardian = guardian_of(flowtop);
    ASSERT_GT(guardian, 0);
    kill(flowtop, SIGKILL);
    ASSERT_TRUE(eventually([&] { return gone(guardian); })) << "the guardian outlived its work";
    expect_settings("0", "0");
    std::ofstream(tmux.dir() + "/report").flush();
    ASSERT_TRUE(tmux.wait_for("EXITED 137")) << tmux.screen();
    std::ofstream(tmux.dir() + "/go").flush();
    ASSERT_TRUE(tmux.wait_for("SAVED")) << tmux.screen();
    EXPECT_EQ(read_text(tmux.dir() + "/after"), read_text(tmux.dir() + "/before"))
        << "stty -g differs after the kill";
    EXPECT_EQ(tmux.flag("alternate_on"), "0");
    EXPECT_EQ(tmux.flag("mouse_standard_flag"), "0");
    EXPECT_EQ(tmux.flag("mouse_any_flag"), "0");
    EXPECT_EQ(tmux.flag("cursor_flag"), "1");
    EXPECT_NE(tmux.screen().find("its guardian did"), std::string::npos) << tmux.screen();
}

TEST_F(Hardening, FirstOfTwoLeavesWhileTheSecondRunsThenBothPutBack) {
    Flowtop first(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(first.next_frame()) << first.stderr_text();
    Flowtop second(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(second.next_frame()) << second.stderr_text();
    first.signal(SIGTERM);
    ASSERT_NE(first.wait(), -1);
    EXPECT_EQ(net.a.sysctl(k_acct), "1") << "the first flowtop undid the second's settings";
    EXPECT_EQ(net.a.sysctl(k_ts), "1");
    // The survivor's frames after that still say, truthfully, that accounting is on.
    for (int i = 0; i < 3; ++i) {
        auto f = second.next_frame();
        ASSERT_TRUE(f) << second.stderr_text();
        EXPECT_EQ(f->frame["acct"], true);
    }
    second.signal(SIGTERM);
    ASSERT_NE(second.wait(), -1);
    expect_settings("0", "0");
}

TEST_F(Hardening, LiveViewAndBatchShareTheSettings) {
    Tmux tmux([&](const std::string& dir) { return live_view_script(net.a, dir, "-t 0.3"); });
    ASSERT_TRUE(tmux.wait_for("DESTINATION")) << tmux.screen();
    Flowtop batch(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(batch.next_frame()) << batch.stderr_text();
    tmux.keys("q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    auto f = batch.next_frame();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->frame["acct"], true);
    batch.signal(SIGKILL);  // the last one, killed: its guardian puts back what both found
    batch.wait();
    expect_settings("0", "0");
    std::ofstream(tmux.dir() + "/go").flush();
    ASSERT_TRUE(tmux.wait_for("SAVED")) << tmux.screen();
    EXPECT_EQ(read_text(tmux.dir() + "/after"), read_text(tmux.dir() + "/before"));
}

TEST_F(Hardening, AdministratorTurnsAccountingOffWhileRunning) {
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    auto f = ft.next_frame();
    ASSERT_TRUE(f) << ft.stderr_text();
    EXPECT_EQ(f->frame["acct"], true);
    net.a.set_sysctl(k_acct, "0");
    bool reported_off = false;
    for (int i = 0; i < 10 && !reported_off; ++i) {
        f = ft.next_frame();
        ASSERT_TRUE(f);
        reported_off = f->frame["acct"] == false;
    }
    EXPECT_TRUE(reported_off) << "the frames kept saying acct:true";
    // Never forced back on while it runs.
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(ft.next_frame());
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    ft.signal(SIGTERM);
    ASSERT_NE(ft.wait(), -1);
    expect_settings("0", "0");
    const std::string err = ft.stderr_text();
    const std::string warning = "nf_conntrack_acct was turned off by someone else";
    const auto at = err.find(warning);
    EXPECT_NE(at, std::string::npos) << err;
    EXPECT_EQ(err.find(warning, at + warning.size()), std::string::npos) << "warned twice: " << err;
}

TEST_F(Hardening, AdministratorsOwnOneWhileRunningIsKeptAtExit) {
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    net.a.set_sysctl(k_acct, "0");
    bool off = false;
    for (int i = 0; i < 10 && !off; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        off = f->frame["acct"] == false;
    }
    ASSERT_TRUE(off);
    net.a.set_sysctl(k_acct, "1");  // now the administrator's own setting
    bool on = false;
    for (int i = 0; i < 10 && !on; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        on = f->frame["acct"] == true;
    }
    EXPECT_TRUE(on);
    ft.signal(SIGTERM);
    ASSERT_NE(ft.wait(), -1);
    EXPECT_EQ(net.a.sysctl(k_acct), "1") << "the administrator's 1 was reset";
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
}

TEST_F(Hardening, ValueFoundOnIsTheAdministratorsForEveryFlowtop) {
    net.a.set_sysctl(k_acct, "1");
    Flowtop first(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(first.next_frame()) << first.stderr_text();
    Flowtop second(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(second.next_frame()) << second.stderr_text();
    first.signal(SIGKILL);
    first.wait();
    second.signal(SIGTERM);
    second.wait();
    EXPECT_TRUE(eventually([&] { return net.a.sysctl(k_ts) == "0"; }));
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
}

TEST_F(Hardening, StaleStateOfAFlowtopKilledWithItsGuardianIsCleaned) {
    std::string holder;
    {
        Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
        ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
        const pid_t guardian = guardian_of(ft.pid());
        ASSERT_GT(guardian, 0);
        for (const auto& e : fs::directory_iterator("/run/flowtop"))
            if (e.path().filename().string().rfind("holder-" + std::to_string(ft.pid()) + "-", 0) ==
                0)
                holder = e.path();
        ASSERT_FALSE(holder.empty());
        kill(guardian, SIGKILL);  // both die: nothing puts the settings back
        ASSERT_TRUE(eventually([&] { return gone(guardian); }));
        ft.signal(SIGKILL);
        ft.wait();
    }
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    EXPECT_TRUE(fs::exists(holder));
    // The next flowtop finds the dead one's claim, cleans its holder, and puts back the value
    // found before it.
    Flowtop next(net.a, {"-o", "json", "-c", "2", "-t", "0.3"});
    EXPECT_EQ(next.wait(), 0) << next.stderr_text();
    EXPECT_FALSE(fs::exists(holder));
    expect_settings("0", "0");
}

namespace {

// CapEff of every thread of pid, and whether each has NoNewPrivs.
void expect_capabilities(pid_t pid, const std::string& cap_eff) {
    int threads = 0;
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        const std::string status = (task.path() / "status").string();
        EXPECT_EQ(status_field(status, "CapEff"), cap_eff) << task.path();
        EXPECT_EQ(status_field(status, "CapPrm"), cap_eff) << task.path();
        EXPECT_EQ(status_field(status, "CapInh"), "0000000000000000") << task.path();
        EXPECT_EQ(status_field(status, "CapAmb"), "0000000000000000") << task.path();
        EXPECT_EQ(status_field(status, "NoNewPrivs"), "1") << task.path();
        ++threads;
    }
    EXPECT_GT(threads, 1) << "the enrichment threads are checked too";
}

// Bits: CAP_DAC_READ_SEARCH 2, CAP_NET_ADMIN 12, CAP_SYS_PTRACE 19, CAP_SYS_ADMIN 21.
constexpr const char* k_net_admin = "0000000000001000";
constexpr const char* k_with_proc = "0000000000081004";

}  // namespace

TEST_F(Hardening, RunningFlowtopKeepsOnlyTheCapabilitiesItUses) {
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    expect_capabilities(ft.pid(), k_with_proc);
    const pid_t guardian = guardian_of(ft.pid());
    ASSERT_GT(guardian, 0);
    const std::string g = "/proc/" + std::to_string(guardian) + "/status";
    EXPECT_EQ(status_field(g, "CapEff"), k_net_admin);
    EXPECT_EQ(status_field(g, "NoNewPrivs"), "1");
}

TEST_F(Hardening, WithoutProcessAttributionOnlyNetAdminRemains) {
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3", "--no-proc"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    expect_capabilities(ft.pid(), k_net_admin);
}

TEST_F(Hardening, AllNetnsKeepsWhatEnteringNewNamespacesNeeds) {
    Namespace own("own");
    Sandbox sandbox{{&net.a, &net.b, &own}};
    {
        Flowtop ft(own, {"--all-netns", "-o", "json", "-c", "1000", "-t", "0.3", "-n", "-G"}, 0,
                   &sandbox);
        ASSERT_TRUE(ft.next_frame(10s)) << ft.stderr_text();
        expect_capabilities(ft.pid(), "0000000000281004");
        ft.signal(SIGTERM);
        ft.wait();
    }
    {
        Flowtop ft(
            own, {"--all-netns", "--no-proc", "-o", "json", "-c", "1000", "-t", "0.3", "-n", "-G"},
            0, &sandbox);
        ASSERT_TRUE(ft.next_frame(10s)) << ft.stderr_text();
        expect_capabilities(ft.pid(), "0000000000281000");
        ft.signal(SIGTERM);
        ft.wait();
    }
    expect_settings("0", "0");
}

TEST_F(Hardening, StartedWithOnlyTheKeptCapabilitiesAndNoNewPrivsFlowtopRuns) {
    // As a systemd unit with CapabilityBoundingSet= and NoNewPrivileges= starts it: every
    // thread starts with nothing to drop (and is not signalled for the drop).
    std::string out, err_path = "/tmp/flowtop-bounded-" + std::to_string(getpid());
    const int status =
        sh(net.a.exec("setpriv --bounding-set -all,+net_admin,+sys_ptrace,+dac_read_search "
                      "--no-new-privs " FLOWTOP_BINARY " -o json -c 2 -t 0.3 -G 2>" +
                      err_path),
           &out);
    const std::string err = read_text(err_path);
    fs::remove(err_path);
    EXPECT_EQ(status, 0) << err;
    int frames = 0;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        auto j = Json::parse(line, nullptr, false);
        if (!j.is_discarded() && j["type"] == "frame") ++frames;
    }
    EXPECT_EQ(frames, 2) << out << err;
    expect_settings("0", "0");
}

TEST_F(Hardening, NonRootUserWithFileCapabilitiesRunsFlowtop) {
    // A copy the user can reach (the checkout may sit in a home of mode 700), with only the
    // capabilities flowtop keeps, given to the file.
    const ExecutableCopy copy;
    const std::string& dir = copy.dir();
    const std::string& program = copy.path();
    must("setcap cap_net_admin,cap_sys_ptrace,cap_dac_read_search+ep " + program);
    std::string out;
    const int status = sh(net.a.exec("setpriv --reuid=65534 --regid=65534 --clear-groups " +
                                     program + " -o json -c 2 -t 0.3 -G 2>" + dir + "/err"),
                          &out);
    const std::string err = read_text(dir + "/err");
    EXPECT_EQ(status, 0) << err;
    int frames = 0;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        auto j = Json::parse(line, nullptr, false);
        if (j.is_discarded() || j["type"] != "frame") continue;
        ++frames;
        EXPECT_EQ(j["acct"], true) << line;  // turned on by a user who is not root
    }
    EXPECT_EQ(frames, 2) << out << err;
    expect_settings("0", "0");
}

TEST_F(Hardening, GuardianPutsBackEveryNamespaceAfterKill9WithAllNetns) {
    // The writer thread adds each namespace after the guardian was forked: their settings reach
    // it over the socket, descriptors and all.
    Namespace own("own");
    for (const char* key : {k_acct, k_ts}) own.set_sysctl(key, "0");
    net.b.set_sysctl(k_acct, "1");  // an administrator's: stays on
    Sandbox sandbox{{&net.a, &net.b, &own}};
    Flowtop ft(own, {"--all-netns", "-o", "json", "-c", "1000", "-t", "0.3", "-n", "-G"}, 0,
               &sandbox);
    ASSERT_TRUE(ft.next_frame(10s)) << ft.stderr_text();
    for (const Namespace* ns : {&net.a, &net.b, &own}) {
        EXPECT_EQ(ns->sysctl(k_acct), "1") << ns->name();
        EXPECT_EQ(ns->sysctl(k_ts), "1") << ns->name();
    }
    ft.signal(SIGKILL);
    ASSERT_NE(ft.wait(), -1);
    for (const Namespace* ns : {&net.a, &own}) {
        EXPECT_TRUE(eventually([&] { return ns->sysctl(k_acct) == "0"; })) << ns->name();
        EXPECT_EQ(ns->sysctl(k_ts), "0") << ns->name();
    }
    EXPECT_EQ(net.b.sysctl(k_acct), "1");
    EXPECT_EQ(net.b.sysctl(k_ts), "0");
}
