// --all-netns against the real kernel: flowtop in a sandbox that can see only the namespaces
// this test made (see Sandbox in harness.hpp), so it never watches or changes the host's.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "flowtop/util/procfs.hpp"
#include "harness.hpp"

using namespace flowtop::test;

namespace {

const char* k_acct = "net.netfilter.nf_conntrack_acct";
const char* k_ts = "net.netfilter.nf_conntrack_timestamp";

std::string host_sysctl(const std::string& key) {
    std::string out;
    sh("sysctl -n " + key, &out);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The label flowtop gives a namespace known only through a process: its container or unit,
// else the inode as lsns and /proc show it.
std::string process_namespace_label(pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid);
    std::string label = flowtop::container_of_cgroup(read_text(dir + "/cgroup"));
    if (!label.empty()) return label;
    std::string link;
    sh("readlink " + dir + "/ns/net", &link);
    while (!link.empty() && link.back() == '\n') link.pop_back();
    return link;  // "net:[INODE]"
}

std::set<std::string> labels_of(const std::vector<Json>& flows) {
    std::set<std::string> out;
    for (const auto& f : flows)
        if (f["netns"].is_string()) out.insert(f["netns"].get<std::string>());
    return out;
}

class AllNetns : public ::testing::Test {
  protected:
    void SetUp() override {
        host_acct_ = host_sysctl(k_acct);
        host_ts_ = host_sysctl(k_ts);
        for (const Namespace* ns : {&net.a, &net.b, &own}) {
            ns->set_sysctl(k_acct, "0");
            ns->set_sysctl(k_ts, "0");
        }
    }
    void TearDown() override {
        // The sandbox kept the host out of reach: its settings are as they were.
        EXPECT_EQ(host_sysctl(k_acct), host_acct_);
        EXPECT_EQ(host_sysctl(k_ts), host_ts_);
    }
    void expect_settings(const std::string& value) {
        for (const Namespace* ns : {&net.a, &net.b, &own}) {
            EXPECT_EQ(ns->sysctl(k_acct), value) << ns->name();
            EXPECT_EQ(ns->sysctl(k_ts), value) << ns->name();
        }
    }

    TestNet net;
    Namespace own{"own"};  // where flowtop runs; conntrack is idle there
    Sandbox sandbox{{&net.a, &net.b, &own}};
    std::string host_acct_, host_ts_;
};

}  // namespace

TEST_F(AllNetns, ShowsEachNamespacesFlowsLabelledAndPicksUpNewOnes) {
    Flowtop ft(own, {"--all-netns", "-o", "json", "-c", "60", "-t", "0.5", "-n", "-G"}, 0,
               &sandbox);
    auto first = ft.next_frame(10s);
    ASSERT_TRUE(first) << ft.stderr_text();
    EXPECT_EQ(first->frame["namespaces"], 3);
    EXPECT_EQ(first->frame["acct"], true);
    expect_settings("1");

    // One TCP connection from b to a: each end's table has it, so it shows twice, once per
    // namespace, with both directions' bytes.
    TcpTransfer transfer(net, false, 5001, 60000, 20000);
    std::vector<Json> both;
    for (int i = 0; i < 20 && both.size() < 2; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f) << ft.stderr_text();
        both.clear();
        for (const auto& flow : f->find("tcp", 5001))
            if (flow["orig_bytes"].is_number() && flow["orig_bytes"].get<long>() >= 60000 &&
                flow["reply_bytes"].get<long>() >= 20000)
                both.push_back(flow);
    }
    ASSERT_EQ(both.size(), 2u);
    EXPECT_EQ(labels_of(both), (std::set<std::string>{net.a.name(), net.b.name()}));

    // A third namespace appears while flowtop runs: a process in the sandbox unshares one and
    // talks UDP inside it. flowtop finds it through /proc, watches its table (turning its
    // accounting on) and attributes the flow to the process.
    const pid_t inside = ft.pid();
    ASSERT_GT(inside, 0);
    const std::string marker = "flowtop-all-netns-" + std::to_string(getpid());
    const std::string dir = std::filesystem::temp_directory_path();
    const std::string program = dir + "/" + marker + ".py", setup = dir + "/" + marker + ".sh";
    // Only flows born while accounting is on carry counters: the program waits (bounded) for
    // flowtop to turn it on in its new namespace before it sends.
    std::ofstream(program)
        << "import socket, time\n"
           "for i in range(200):\n"
           "    if open('/proc/sys/net/netfilter/nf_conntrack_acct').read().strip() == '1':\n"
           "        break\n"
           "    time.sleep(0.05)\n"
           "r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           "r.bind(('192.0.2.1', 5353))\n"
           "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           "s.connect(('192.0.2.1', 5353))\n"
           "for i in range(150):\n"
           "    s.send(b'x' * 100)\n"
           "    time.sleep(0.1)\n";
    std::ofstream(setup) << "set -e\nip link set lo up\nip addr add 192.0.2.1/32 dev lo\n"
                            "nft 'add table inet t; add chain inet t out { type filter hook "
                            "output priority 0; }; add rule inet t out ct state new,established "
                            "accept'\nexec python3 "
                         << program << " " << marker << "\n";
    must("nsenter -t " + std::to_string(inside) + " -m -p -- unshare -n -- sh " + setup +
         " >/dev/null 2>&1 &");
    pid_t third = -1;
    for (int i = 0; i < 100 && third <= 0; ++i) {
        std::string out;
        // Only python3 itself: nsenter, unshare and the setup shell name the marker too.
        sh("pgrep -n -f -- 'python3 .*\\.py " + marker + "$'", &out);
        third = std::atoi(out.c_str());
        if (third <= 0) std::this_thread::sleep_for(50ms);
    }
    std::filesystem::remove(setup);
    ASSERT_GT(third, 0) << "the third namespace's process did not start";
    const std::string third_label = process_namespace_label(third);

    // A flow announced by its NEW event after this tick's re-read shows once without counters:
    // wait for the frame that has both its process and its counters.
    std::optional<Json> udp;
    std::optional<Frame> with_third;
    bool complete = false;
    for (int i = 0; i < 20 && !complete; ++i) {
        with_third = ft.next_frame();
        ASSERT_TRUE(with_third) << ft.stderr_text();
        for (const auto& flow : with_third->find("udp", 5353)) {
            if (flow["netns"] != third_label) continue;
            udp = flow;
            complete = flow["comm"].is_string() && flow["orig_bytes"].is_number();
        }
    }
    ASSERT_TRUE(udp) << "no UDP flow labelled " << third_label;
    EXPECT_EQ(with_third->frame["namespaces"], 4);
    EXPECT_EQ((*udp)["comm"], "python3");
    EXPECT_EQ((*udp)["user"], "root");
    EXPECT_EQ((*udp)["dst"], "192.0.2.1");
    EXPECT_TRUE((*udp)["orig_bytes"].is_number()) << "accounting was not on in the new namespace";
    // The flows of the first two namespaces are still there, still labelled.
    EXPECT_EQ(labels_of(with_third->find("tcp", 5001)),
              (std::set<std::string>{net.a.name(), net.b.name()}));

    // When its last process exits the namespace is gone: so are its flows, and it is no
    // longer counted.
    kill(third, SIGKILL);
    bool left = false;
    for (int i = 0; i < 20 && !left; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f) << ft.stderr_text();
        left = f->frame["namespaces"] == 3 && f->find("udp", 5353).empty();
    }
    EXPECT_TRUE(left) << "the vanished namespace stayed watched";

    ft.signal(SIGTERM);
    const int status = ft.wait();
    ASSERT_NE(status, -1);
    // sh, pid 1 of the sandbox, reports flowtop's death by SIGTERM as 128 + 15.
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << status;
    expect_settings("0");
    std::filesystem::remove(program);
}

TEST_F(AllNetns, EveryNamespacesSettingsComeBackAfterACrash) {
    // Already on in one namespace: that one must stay on, the others go back to off.
    net.b.set_sysctl(k_acct, "1");
    Flowtop ft(own, {"--all-netns", "-o", "json", "-c", "100", "-t", "0.5", "-n", "-G"}, 0,
               &sandbox);
    ASSERT_TRUE(ft.next_frame(10s)) << ft.stderr_text();
    for (const Namespace* ns : {&net.a, &net.b, &own}) EXPECT_EQ(ns->sysctl(k_acct), "1");
    ft.signal(SIGSEGV);
    const int status = ft.wait();
    ASSERT_NE(status, -1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGSEGV) << status;
    EXPECT_EQ(net.a.sysctl(k_acct), "0");
    EXPECT_EQ(net.b.sysctl(k_acct), "1");
    EXPECT_EQ(own.sysctl(k_acct), "0");
    for (const Namespace* ns : {&net.a, &net.b, &own}) EXPECT_EQ(ns->sysctl(k_ts), "0");
}

TEST_F(AllNetns, RefusesToCombineWithOneNamespace) {
    Flowtop ft(own, {"--all-netns", "--netns", net.a.name()});
    EXPECT_EQ(ft.wait(), 2 << 8);
    EXPECT_NE(ft.stderr_text().find("exclude each other"), std::string::npos);
}
