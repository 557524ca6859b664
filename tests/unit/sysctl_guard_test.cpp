// The guard against files laid out like /proc/sys in a temporary directory. The real sysctls
// are tested inside network namespaces (tests/netns).
#include "flowtop/util/sysctl_guard.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "flowtop/util/signals.hpp"

namespace fs = std::filesystem;
using flowtop::SysctlGuard;

namespace {
class FakeProcSys : public ::testing::Test {
  protected:
    void SetUp() override {
        root = fs::temp_directory_path() /
               ("flowtop-sysctl-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(root / "net/netfilter");
    }
    void TearDown() override { fs::remove_all(root); }
    void write(const std::string& name, const std::string& value) {
        std::ofstream(root / "net/netfilter" / name) << value;
    }
    std::string read(const std::string& name) {
        std::ifstream in(root / "net/netfilter" / name);
        std::string s;
        std::getline(in, s);
        return s;
    }
    fs::path root;
    const std::vector<std::string> names = {"net.netfilter.nf_conntrack_acct",
                                            "net.netfilter.nf_conntrack_timestamp"};
};
}  // namespace

TEST_F(FakeProcSys, TurnsOnWhatIsOffAndRestoresIt) {
    write("nf_conntrack_acct", "0\n");
    write("nf_conntrack_timestamp", "0\n");
    {
        SysctlGuard guard(names, root.string());
        EXPECT_EQ(read("nf_conntrack_acct"), "1");
        EXPECT_EQ(read("nf_conntrack_timestamp"), "1");
        EXPECT_TRUE(guard.is_on("net.netfilter.nf_conntrack_acct"));
        EXPECT_TRUE(guard.warnings().empty());
    }
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(FakeProcSys, LeavesSettingsThatAreAlreadyOnAlone) {
    write("nf_conntrack_acct", "1\n");
    write("nf_conntrack_timestamp", "0\n");
    {
        SysctlGuard guard(names, root.string());
        EXPECT_FALSE(guard.states()[0].changed);
        EXPECT_TRUE(guard.states()[1].changed);
        guard.restore();
        guard.restore();  // twice is harmless
    }
    EXPECT_EQ(read("nf_conntrack_acct"), "1");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(FakeProcSys, MissingSysctlIsAWarningNotAFailure) {
    write("nf_conntrack_acct", "0\n");
    SysctlGuard guard(names, root.string());
    ASSERT_EQ(guard.warnings().size(), 1u);
    EXPECT_NE(guard.warnings()[0].find("nf_conntrack_timestamp"), std::string::npos);
    EXPECT_FALSE(guard.is_on("net.netfilter.nf_conntrack_timestamp"));
    EXPECT_TRUE(guard.is_on("net.netfilter.nf_conntrack_acct"));
}

TEST_F(FakeProcSys, ReadOnlySysctlIsAWarning) {
    if (geteuid() == 0) GTEST_SKIP() << "root ignores file modes; the netns tests cover this";
    write("nf_conntrack_acct", "0\n");
    write("nf_conntrack_timestamp", "1\n");
    chmod((root / "net/netfilter/nf_conntrack_acct").c_str(), 0444);
    SysctlGuard guard(names, root.string());
    ASSERT_EQ(guard.warnings().size(), 1u);
    EXPECT_NE(guard.warnings()[0].find("cannot be changed"), std::string::npos);
}

TEST_F(FakeProcSys, FatalSignalRestoresBeforeTheProcessDies) {
    write("nf_conntrack_acct", "0\n");
    write("nf_conntrack_timestamp", "0\n");
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        SysctlGuard guard(names, root.string());
        raise(SIGSEGV);
        _exit(0);  // not reached
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));  // the exit status still tells the truth
    EXPECT_EQ(WTERMSIG(status), SIGSEGV);
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
    EXPECT_EQ(read("nf_conntrack_timestamp"), "0");
}

TEST_F(FakeProcSys, SecondExitSignalRestoresAndExitsAtOnce) {
    write("nf_conntrack_acct", "0\n");
    write("nf_conntrack_timestamp", "0\n");
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        SysctlGuard guard(names, root.string());
        raise(SIGTERM);  // first: only a request, the program would unwind
        if (flowtop::signals::pending_exit_signal() != SIGTERM) _exit(3);
        raise(SIGTERM);  // second: a stuck shutdown is cut short, still restoring
        _exit(4);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
    EXPECT_EQ(read("nf_conntrack_acct"), "0");
}
