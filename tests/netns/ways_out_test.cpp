// Every way out of a running flowtop puts the namespace's settings back: each signal whose
// default action ends a process (batch and live view), a terminal that hangs up while the
// shell ignores SIGHUP, and stdin at its end in the live view.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace flowtop::test;
namespace fs = std::filesystem;

namespace {

const char* k_acct = "net.netfilter.nf_conntrack_acct";
const char* k_ts = "net.netfilter.nf_conntrack_timestamp";

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool alive(pid_t pid) { return kill(pid, 0) == 0; }

class WaysOut : public ::testing::TestWithParam<int> {
  protected:
    void SetUp() override {
        net.a.set_sysctl(k_acct, "0");
        net.a.set_sysctl(k_ts, "0");
    }
    TestNet net;
};

std::string name_of(const ::testing::TestParamInfo<int>& info) {
    if (info.param == SIGRTMIN) return "SIGRTMIN";
    std::string name = sigabbrev_np(info.param);
    return "SIG" + name;
}

// A private tmux server running one shell script, removed on destruction.
struct Tmux {
    explicit Tmux(const std::string& tag)
        : cmd("tmux -L ftways" + std::to_string(getpid()) + tag),
          dir(fs::temp_directory_path() / ("flowtop-ways-" + std::to_string(getpid()) + tag)) {
        fs::create_directories(dir);
    }
    ~Tmux() {
        sh(cmd + " kill-server 2>/dev/null");
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    void start(const std::string& script) {
        std::ofstream(dir / "run.sh") << script << "\n";
        must(cmd + " new-session -d -s w -x 120 -y 40 'sh " + (dir / "run.sh").string() + "'");
    }
    std::string screen() {
        std::string out;
        sh(cmd + " capture-pane -p -t w", &out);
        return out;
    }
    bool wait_for_file(const std::string& name, std::chrono::milliseconds timeout = 10s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (fs::exists(dir / name) && fs::file_size(dir / name) > 0) return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }
    bool wait_for_screen(const std::string& text, std::chrono::milliseconds timeout = 10s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (screen().find(text) != std::string::npos) return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }
    std::string path(const std::string& name) const { return (dir / name).string(); }
    std::string cmd;
    fs::path dir;
};

}  // namespace

TEST_P(WaysOut, BatchRestoresWhenEndedBy) {
    const int signo = GetParam();
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3", "-n", "-G"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    ASSERT_EQ(net.a.sysctl(k_acct), "1");
    ft.signal(signo);
    const int status = ft.wait();
    ASSERT_NE(status, -1) << "flowtop did not exit after " << strsignal(signo);
    // The exit status still tells the truth: ended by the signal it got.
    ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status << " " << ft.stderr_text();
    EXPECT_EQ(WTERMSIG(status), signo);
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
}

TEST_P(WaysOut, LiveViewRestoresSettingsAndTerminalWhenEndedBy) {
    const int signo = GetParam();
    Tmux tmux("sig" + std::to_string(signo));
    tmux.start("stty -g >" + tmux.path("before") + "; echo $$ >" + tmux.path("shell") + "; " +
               net.a.exec(std::string(FLOWTOP_BINARY) + " -n -G -t 0.3") + " 2>" +
               tmux.path("err") + "; echo $? >" + tmux.path("rc") + "; stty -g >" +
               tmux.path("after") + "; sleep 60");
    ASSERT_TRUE(tmux.wait_for_screen("DESTINATION")) << tmux.screen();
    ASSERT_EQ(net.a.sysctl(k_acct), "1");
    // flowtop is the shell's child (ip netns exec execs it in place).
    const std::string shell = read_file(tmux.path("shell"));
    const pid_t pid = std::stoi(read_file("/proc/" + std::to_string(std::stoi(shell)) + "/task/" +
                                          std::to_string(std::stoi(shell)) + "/children"));
    ASSERT_EQ(kill(pid, signo), 0);
    ASSERT_TRUE(tmux.wait_for_file("after")) << "flowtop still runs after " << strsignal(signo);
    EXPECT_EQ(read_file(tmux.path("rc")), std::to_string(128 + signo) + "\n");
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
    EXPECT_EQ(read_file(tmux.path("before")), read_file(tmux.path("after")))
        << "terminal modes changed";
    EXPECT_EQ(tmux.screen().find("DESTINATION"), std::string::npos)
        << "still on the alternate screen:\n"
        << tmux.screen();
}

INSTANTIATE_TEST_SUITE_P(Signals, WaysOut,
                         ::testing::Values(SIGUSR1, SIGUSR2, SIGALRM, SIGPWR, SIGVTALRM, SIGPROF,
                                           SIGXCPU, SIGXFSZ, SIGSTKFLT, SIGSYS, SIGTRAP, SIGRTMIN),
                         name_of);

TEST(WaysOutTerminal, HangUpWhileTheShellIgnoresSighupEndsTheLiveView) {
    TestNet net;
    net.a.set_sysctl(k_acct, "0");
    net.a.set_sysctl(k_ts, "0");
    Tmux tmux("hup");
    // trap '' HUP: flowtop inherits SIGHUP ignored (and keeps it so); the hang-up itself must
    // end it.
    tmux.start("trap '' HUP; echo $$ >" + tmux.path("pid") + "; exec " +
               net.a.exec(std::string(FLOWTOP_BINARY) + " -n -G -t 0.3") + " 2>" +
               tmux.path("err"));
    ASSERT_TRUE(tmux.wait_for_screen("DESTINATION")) << tmux.screen();
    const pid_t pid = std::stoi(read_file(tmux.path("pid")));
    ASSERT_EQ(net.a.sysctl(k_acct), "1");
    must(tmux.cmd + " kill-server");  // the terminal goes away
    for (int i = 0; i < 100 && alive(pid); ++i) std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(alive(pid)) << "flowtop still runs after its terminal hung up";
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
}

TEST(WaysOutTerminal, StdinAtItsEndEndsTheLiveViewWithoutSpinning) {
    TestNet net;
    net.a.set_sysctl(k_acct, "0");
    Tmux tmux("eof");
    tmux.start("stty -g >" + tmux.path("before") + "; " +
               net.a.exec(std::string(FLOWTOP_BINARY) + " -n -G -t 0.3") + " </dev/null 2>" +
               tmux.path("err") + "; echo $? >" + tmux.path("rc") + "; stty -g >" +
               tmux.path("after") + "; sleep 60");
    ASSERT_TRUE(tmux.wait_for_file("rc", 10s)) << tmux.screen();
    EXPECT_EQ(read_file(tmux.path("rc")), "0\n");
    EXPECT_EQ(read_file(tmux.path("err")), "");
    ASSERT_TRUE(tmux.wait_for_file("after"));
    EXPECT_EQ(read_file(tmux.path("before")), read_file(tmux.path("after")));
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
}
