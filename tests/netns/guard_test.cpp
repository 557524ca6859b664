// The kernel-settings guard inside a test namespace: both sysctls on while flowtop runs, and
// exactly what was found after every way out.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "harness.hpp"

using namespace flowtop::test;

namespace {

const char* k_acct = "net.netfilter.nf_conntrack_acct";
const char* k_ts = "net.netfilter.nf_conntrack_timestamp";

class Guard : public ::testing::TestWithParam<int> {
  protected:
    void SetUp() override {
        net.a.set_sysctl(k_acct, "0");
        net.a.set_sysctl(k_ts, "0");
    }
    TestNet net;
};

std::string signal_name(const ::testing::TestParamInfo<int>& info) {
    switch (info.param) {
        case SIGINT:
            return "SIGINT";
        case SIGTERM:
            return "SIGTERM";
        case SIGHUP:
            return "SIGHUP";
        case SIGQUIT:
            return "SIGQUIT";
        case SIGSEGV:
            return "SIGSEGV";
        case SIGABRT:
            return "SIGABRT";
        case SIGBUS:
            return "SIGBUS";
        default:
            return "signal" + std::to_string(info.param);
    }
}

}  // namespace

TEST_P(Guard, RestoresSysctlsWhenKilledBy) {
    const int signo = GetParam();
    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.5"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    EXPECT_EQ(net.a.sysctl(k_ts), "1");
    ft.signal(signo);
    int status = ft.wait();
    ASSERT_NE(status, -1) << "flowtop did not exit after the signal";
    // The exit status tells the truth: the process died of the signal it got.
    ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status << " " << ft.stderr_text();
    EXPECT_EQ(WTERMSIG(status), signo);
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
}

INSTANTIATE_TEST_SUITE_P(Signals, Guard,
                         ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGABRT,
                                           SIGBUS),
                         signal_name);

TEST(GuardEnd, RestoresSysctlsAtTheEndOfBatch) {
    TestNet net;
    net.a.set_sysctl(k_acct, "0");
    net.a.set_sysctl(k_ts, "0");
    Flowtop ft(net.a, {"-o", "json", "-c", "2", "-t", "0.5"});
    ASSERT_TRUE(ft.next_frame());
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    EXPECT_EQ(ft.wait(), 0);
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
}

TEST(GuardEnd, LeavesSettingsThatWereAlreadyOn) {
    TestNet net;
    net.a.set_sysctl(k_acct, "1");
    net.a.set_sysctl(k_ts, "1");
    Flowtop ft(net.a, {"-o", "json", "-c", "1"});
    EXPECT_EQ(ft.wait(), 0);
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    EXPECT_EQ(net.a.sysctl(k_ts), "1");
}

TEST(GuardEnd, RestoresWhenTheReaderGoesAway) {
    TestNet net;
    net.a.set_sysctl(k_acct, "0");
    std::string out;
    // head exits after one line: flowtop meets a broken pipe, restores, and dies of SIGPIPE.
    sh("bash -c '" + net.a.exec(std::string(FLOWTOP_BINARY)) +
           " -o json -c 100 -t 0.2 | head -1 >/dev/null; echo ${PIPESTATUS[0]}'",
       &out);
    EXPECT_EQ(out, "141\n");
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
}

TEST(GuardEnd, NetnsOptionGuardsTheWatchedNamespaceOnly) {
    TestNet net;
    for (const Namespace* ns : {&net.a, &net.b}) {
        ns->set_sysctl(k_acct, "0");
        ns->set_sysctl(k_ts, "0");
    }
    // Started in b, watching a: a's settings are the ones turned on and put back.
    Flowtop ft(net.b, {"-o", "json", "-c", "100", "-t", "0.3", "--netns", net.a.name()});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();
    EXPECT_EQ(net.a.sysctl(k_acct), "1");
    EXPECT_EQ(net.b.sysctl(k_acct), "0");
    ft.signal(SIGTERM);
    ft.wait();
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.a.sysctl(k_ts), "0");
    EXPECT_EQ(net.b.sysctl(k_acct), "0");
}
