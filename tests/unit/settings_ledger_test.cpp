// Several flowtops (and an administrator) sharing one namespace's settings through the ledger,
// against files laid out like /proc/sys in a temporary directory. The real sysctls are tested
// inside network namespaces (tests/netns/ledger_test.cpp).
#include "flowtop/util/settings_ledger.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "flowtop/util/guardian.hpp"
#include "flowtop/util/sysctl_guard.hpp"
#include "flowtop/util/system.hpp"

namespace fs = std::filesystem;
using flowtop::SysctlGuard;

namespace {

const std::string k_acct = "net.netfilter.nf_conntrack_acct";
const std::string k_ts = "net.netfilter.nf_conntrack_timestamp";

class Ledger : public ::testing::Test {
  protected:
    void SetUp() override {
        root = fs::temp_directory_path() /
               ("flowtop-ledger-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(root / "sys/net/netfilter");
        fs::create_directories(root / "run");
        fs::permissions(root / "run", fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
        write("nf_conntrack_acct", "0\n");
        write("nf_conntrack_timestamp", "0\n");
    }
    void TearDown() override { fs::remove_all(root); }
    void write(const std::string& name, const std::string& value) {
        std::ofstream(root / "sys/net/netfilter" / name) << value;
    }
    std::string read(const std::string& name) {
        std::ifstream in(root / "sys/net/netfilter" / name);
        std::string s;
        std::getline(in, s);
        return s;
    }
    std::unique_ptr<SysctlGuard> guard() {
        return std::make_unique<SysctlGuard>(names, (root / "sys").string(),
                                             (root / "run").string());
    }
    std::string state_file() const {
        return (root / "run" /
                ("netns-" + std::to_string(flowtop::netns_inode("/proc/thread-self/ns/net"))))
            .string();
    }
    fs::path root;
    const std::vector<std::string> names = {k_acct, k_ts};
};

}  // namespace

TEST_F(Ledger, FirstLeavesWhileSecondRunsThenBothPutBack) {
    auto first = guard();
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    auto second = guard();
    EXPECT_TRUE(second->is_on(k_acct));
    EXPECT_TRUE(second->states()[0].changed);  // shared: the last one puts it back
    EXPECT_EQ(second->states()[0].found, "0");
    first.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "1") << "the second flowtop still needs it";
    EXPECT_EQ(read("nf_conntrack_timestamp"), "1");
    EXPECT_FALSE(second->check());
    second.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
    EXPECT_FALSE(fs::exists(state_file())) << "the last one cleans up";
}

TEST_F(Ledger, SecondLeavesFirstThenFirstPutsBack) {
    auto first = guard();
    auto second = guard();
    second.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    first.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
}

TEST_F(Ledger, AdministratorTurnsOffWhileRunning) {
    auto g = guard();
    write("nf_conntrack_acct", "0\n");
    EXPECT_TRUE(g->check());
    EXPECT_FALSE(g->is_on(k_acct)) << "reported off honestly";
    EXPECT_TRUE(g->is_on(k_ts));
    auto notes = g->take_notes();
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("turned off by someone else"), std::string::npos) << notes[0];
    EXPECT_FALSE(g->check());
    EXPECT_TRUE(g->take_notes().empty()) << "told once";
    EXPECT_EQ(read("nf_conntrack_acct"), "0") << "not forced back on";
    // The administrator's own 1 afterwards is theirs: not put back to 0 at the end.
    write("nf_conntrack_acct", "1\n");
    EXPECT_TRUE(g->check());
    EXPECT_TRUE(g->is_on(k_acct));
    g.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(Ledger, AdministratorTurnsOffUnderTwoFlowtops) {
    auto first = guard();
    auto second = guard();
    write("nf_conntrack_acct", "0\n");
    EXPECT_TRUE(second->check());
    EXPECT_FALSE(second->is_on(k_acct));
    second.reset();
    write("nf_conntrack_acct", "1\n");  // the administrator changes their mind
    first.reset();                      // the claim is gone for every flowtop: nobody puts it back
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(Ledger, AdministratorSettingFoundOnIsNeverWritten) {
    write("nf_conntrack_acct", "1\n");
    auto first = guard();
    EXPECT_FALSE(first->states()[0].changed);
    auto second = guard();
    EXPECT_FALSE(second->states()[0].changed);
    first.reset();
    second.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(Ledger, StaleStateOfADeadFlowtopIsCleanedAndItsChangePutBack) {
    // A flowtop that died without a guardian: its claim and an unlocked holder file remain.
    write("nf_conntrack_acct", "1\n");
    std::ofstream(root / "run/holder-99999-deadbeef") << "99999\n";
    std::ofstream(state_file()) << "claim " << k_acct << " 0 1\nholder 99999-deadbeef\n";
    auto g = guard();
    EXPECT_TRUE(g->states()[0].changed) << "the dead one's change is adopted";
    EXPECT_FALSE(fs::exists(root / "run/holder-99999-deadbeef")) << "stale holder removed";
    std::ifstream in(state_file());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find("99999"), std::string::npos) << text;
    g.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "0") << "the value before the dead flowtop";
}

TEST_F(Ledger, LiveHolderIsKept) {
    // Another flowtop alive (its holder file locked), which claimed acct.
    write("nf_conntrack_acct", "1\n");
    const auto holder = root / "run/holder-4242-0badf00d";
    std::ofstream(holder) << "4242\n";
    flowtop::UniqueFd lock(open(holder.c_str(), O_RDONLY));
    ASSERT_EQ(flock(lock.get(), LOCK_EX), 0);
    std::ofstream(state_file()) << "claim " << k_acct << " 0 1\nholder 4242-0badf00d\n";
    auto g = guard();
    g.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "1") << "the other flowtop still runs";
    // Claims are shared: the one this guard made is the other's to put back when it leaves.
    EXPECT_EQ(read("nf_conntrack_timestamp"), "1");
    EXPECT_TRUE(fs::exists(holder));
    std::ifstream in(state_file());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find("claim " + k_ts + " 0 1"), std::string::npos) << text;
    EXPECT_NE(text.find("holder 4242-0badf00d"), std::string::npos) << text;
}

TEST_F(Ledger, ForgedStateLinesAreIgnored) {
    std::ofstream(state_file()) << "claim " << k_acct << " 0;rm 1\nclaim ../../x 0 1\n"
                                << "holder ../../etc/passwd\n";
    auto g = guard();
    EXPECT_EQ(g->states()[0].found, "0");
    g.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
}

TEST_F(Ledger, WithoutTheDirectoryOnlyWhatStillHoldsOurValueIsPutBack) {
    {
        SysctlGuard g(names, (root / "sys").string(), std::string{});
        write("nf_conntrack_timestamp", "5\n");  // someone else's value since
    }
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "5");
}

TEST_F(Ledger, GuardianPutsBackAfterSigkill) {
    write("nf_conntrack_acct", "0\n");
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string note;
        if (!flowtop::guardian::start(note)) _exit(3);
        SysctlGuard g(names, (root / "sys").string(), (root / "run").string());
        if (read("nf_conntrack_acct") != "1") _exit(4);
        raise(SIGKILL);
        _exit(5);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    for (int i = 0; i < 200 && read("nf_conntrack_acct") != "0"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
    for (int i = 0; i < 200 && fs::exists(state_file()); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_FALSE(fs::exists(state_file()));
}

TEST_F(Ledger, GuardianLeavesTheSettingToTheOtherFlowtop) {
    auto other = guard();  // this test process: a second flowtop that keeps running
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string note;
        if (!flowtop::guardian::start(note)) _exit(3);
        SysctlGuard g(names, (root / "sys").string(), (root / "run").string());
        raise(SIGKILL);
        _exit(5);
    }
    waitpid(child, nullptr, 0);
    // The guardian has left once the state file no longer names the dead holder.
    for (int i = 0; i < 200; ++i) {
        std::ifstream in(state_file());
        std::string text((std::istreambuf_iterator<char>(in)), {});
        if (text.find("holder " + std::to_string(child) + "-") == std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    other.reset();
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
}

TEST_F(Ledger, GuardianRestoresOnAFatalSignalBeforeTheProcessDies) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string note;
        if (!flowtop::guardian::start(note)) _exit(3);
        SysctlGuard g(names, (root / "sys").string(), (root / "run").string());
        raise(SIGSEGV);
        _exit(5);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGSEGV);
    // No waiting: the handler waited for the guardian's answer.
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(Ledger, CrashAfterTheGuardianWasKilledStillRestores) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string note;
        if (!flowtop::guardian::start(note)) _exit(3);
        SysctlGuard g(names, (root / "sys").string(), (root / "run").string());
        std::ifstream in("/proc/self/task/" + std::to_string(getpid()) + "/children");
        pid_t guardian = 0;
        if (!(in >> guardian)) _exit(4);
        kill(guardian, SIGKILL);
        waitpid(guardian, nullptr, 0);
        raise(SIGSEGV);  // no guardian to answer: flowtop's prepared writes run
        _exit(5);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGSEGV);
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}
