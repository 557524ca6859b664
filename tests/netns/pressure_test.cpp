// Conntrack table pressure against the kernel's own word: ct_count against `conntrack -C`,
// ct_max against the namespace's nf_conntrack_max, the per-CPU counters against `conntrack -S`
// summed, and a burst of unreplied UDP from one LAN client on top of --group table.
//
// Namespace a is a router (forwarding on) for b's LAN client 192.0.2.11; a routes the
// documentation net 203.0.113.0/24 to a next hop whose MAC nobody has, so every packet is lost
// after conntrack has confirmed its entry: the flows stay UNREPLIED, as a flood through a
// gateway leaves them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.hpp"

namespace flowtop::test {
namespace {

class Pressure : public ::testing::Test {
  protected:
    void SetUp() override {
        must("ip -n " + net.b.name() + " addr add 192.0.2.11/32 dev eth0");
        must("ip -n " + net.b.name() + " route add 203.0.113.0/24 via 198.51.100.1");
        must("ip -n " + net.a.name() + " route add 192.0.2.0/24 via 198.51.100.2");
        // A next hop whose (permanent, made-up) MAC nobody has: b's veth drops the frames.
        must("ip -n " + net.a.name() +
             " neigh add 198.51.100.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent");
        must("ip -n " + net.a.name() + " route add 203.0.113.0/24 via 198.51.100.9");
        net.a.set_sysctl("net.ipv4.ip_forward", "1");
        must(net.a.exec(
            "nft add chain inet fttest ftfwd '{ type filter hook forward priority 0; }'"));
        must(net.a.exec("nft add rule inet fttest ftfwd ct state new,established accept"));
    }

    // `count` UDP datagrams from 192.0.2.11 (b) to 203.0.113.5, each to its own port: that
    // many unreplied entries in a's table.
    void udp_burst(int count) const {
        int fd = net.b.socket(AF_INET, SOCK_DGRAM);
        ASSERT_GE(fd, 0);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        inet_pton(AF_INET, "192.0.2.11", &src.sin_addr);
        ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
        for (int i = 0; i < count; ++i) {
            sockaddr_in dst{};
            dst.sin_family = AF_INET;
            dst.sin_port = htons(static_cast<std::uint16_t>(20000 + i));
            inet_pton(AF_INET, "203.0.113.5", &dst.sin_addr);
            ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 1);
        }
        close(fd);
    }

    // `conntrack -S` summed over CPUs, by field name.
    std::map<std::string, std::uint64_t> kernel_stats() const {
        std::map<std::string, std::uint64_t> sum;
        std::istringstream in(must(net.a.exec("conntrack -S")));
        std::string word;
        while (in >> word) {
            const auto eq = word.find('=');
            if (eq == std::string::npos || word.starts_with("cpu=")) continue;
            sum[word.substr(0, eq)] += std::stoull(word.substr(eq + 1));
        }
        return sum;
    }

    std::uint64_t conntrack_count() const { return std::stoull(must(net.a.exec("conntrack -C"))); }

    TestNet net;
    TmuxSession tmux{"ftpr"};
};

TEST_F(Pressure, CountMaxAndKernelCountersEqualWhatConntrackSays) {
    // Per namespace only where the kernel allows it; else the file says the global value.
    sh(net.a.exec("sysctl -qw net.netfilter.nf_conntrack_max=3001 2>/dev/null"));
    const auto max = std::stoull(net.a.sysctl("net.netfilter.nf_conntrack_max"));
    const auto buckets = std::stoull(net.a.sysctl("net.netfilter.nf_conntrack_buckets"));
    udp_burst(50);
    // SYN and FIN together: the kernel counts these as invalid (a counter not left at 0).
    must(net.b.exec("hping3 -q -c 3 -i u10000 -S -F -p 80 198.51.100.1 >/dev/null 2>&1; true"));
    Flowtop ft(net.a, {"--batch", "-o", "json", "-n", "-G", "-t", "0.3", "-c", "30"});
    bool equal_count = false, equal_stats = false;
    std::uint64_t last_count = 0, last_kernel = 0;
    // Traffic has stopped: the table holds still, so a frame and `conntrack -C` read just
    // after it agree; a few frames allow for one taken across a change.
    for (int i = 0; i < 20 && !(equal_count && equal_stats); ++i) {
        auto frame = ft.next_frame();
        ASSERT_TRUE(frame);
        const auto& f = frame->frame;
        ASSERT_TRUE(f["ct_count"].is_number()) << f.dump();
        EXPECT_EQ(f["ct_max"].get<std::uint64_t>(), max);
        EXPECT_EQ(f["ct_buckets"].get<std::uint64_t>(), buckets);
        last_count = f["ct_count"].get<std::uint64_t>();
        last_kernel = conntrack_count();
        equal_count = equal_count || last_count == last_kernel;
        const auto kernel = kernel_stats();
        bool same = true;
        for (const char* key :
             {"found", "invalid", "insert_failed", "drop", "early_drop", "error", "search_restart"})
            same = same && f["ct_stats"][key].get<std::uint64_t>() == kernel.at(key);
        equal_stats = equal_stats || same;
        if (same) {
            EXPECT_GE(f["ct_stats"]["invalid"].get<std::uint64_t>(), 3u) << f.dump();
        }
        if (i == 19) ADD_FAILURE() << f.dump();
    }
    EXPECT_TRUE(equal_count) << "flowtop " << last_count << ", conntrack -C " << last_kernel;
    EXPECT_GE(last_count, 50u);
    EXPECT_TRUE(equal_stats);
    ft.signal(SIGTERM);
    ft.wait();
}

TEST_F(Pressure, UnrepliedUdpBurstPutsItsClientOnTopOfTheTableConsumers) {
    udp_burst(200);
    // One ordinary, replied flow from a second client for contrast.
    must(net.b.exec("ping -c 2 -i 0.2 -I 198.51.100.2 198.51.100.1 >/dev/null"));
    std::string out;
    ASSERT_EQ(sh(net.a.exec(std::string(FLOWTOP_BINARY) +
                            " --batch -o json --group table -n -G -t 0.3 -c 2 2>/dev/null"),
                 &out),
              0);
    std::istringstream in(out);
    std::string line;
    Json first_source, unreplied, summary;
    while (std::getline(in, line)) {
        auto j = Json::parse(line);
        if (j["type"] == "ct_table") {
            summary = j;
            first_source = unreplied = Json();
        }
        if (j["type"] != "table") continue;
        if (j["by"] == "source" && first_source.is_null()) first_source = j;
        if (j["by"] == "state" && j["key"] == "UNREPLIED") unreplied = j;
    }
    ASSERT_FALSE(summary.is_null()) << out;
    EXPECT_GE(summary["ct_count"].get<std::uint64_t>(), 200u);
    ASSERT_FALSE(first_source.is_null()) << out;
    EXPECT_EQ(first_source["key"], "192.0.2.11") << out;
    EXPECT_GE(first_source["entries"].get<std::uint64_t>(), 200u);
    ASSERT_FALSE(unreplied.is_null()) << out;
    EXPECT_GE(unreplied["entries"].get<std::uint64_t>(), 200u);
    // The kernel agrees: that many entries from the client and no reply.
    const auto listed =
        must(net.a.exec("conntrack -L -s 192.0.2.11 -p udp 2>/dev/null | "
                        "grep -c UNREPLIED"));
    EXPECT_EQ(std::stoull(listed), first_source["entries"].get<std::uint64_t>());

    // The text table names them too.
    ASSERT_EQ(sh(net.a.exec(std::string(FLOWTOP_BINARY) +
                            " --batch --group table -n -G -c 1 2>/dev/null"),
                 &out),
              0);
    EXPECT_NE(out.find("ct "), std::string::npos) << out;
    EXPECT_NE(out.find("source   192.0.2.11"), std::string::npos) << out;
    EXPECT_NE(out.find("state    UNREPLIED"), std::string::npos) << out;

    // The live view's Table tab: the client on top, with its share of the entries in use.
    if (sh("command -v tmux >/dev/null") != 0) GTEST_SKIP() << "the Table tab check needs tmux";
    const std::string cmd = net.a.exec(std::string(FLOWTOP_BINARY) + " -n -G") + "; sleep 30";
    tmux.start(cmd, 100, 24);
    ASSERT_TRUE(tmux.wait_for("DESTINATION")) << tmux.screen();
    tmux.keys("Tab Tab Tab Tab Tab Tab");
    ASSERT_TRUE(tmux.wait_for("[Table]")) << tmux.screen();
    ASSERT_TRUE(tmux.wait_for("192.0.2.11")) << tmux.screen();
    const std::string text = tmux.screen();
    const std::regex use(R"(ct (\d+)/\d+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, use)) << text;
    const double in_use = std::stod(m[1].str());
    std::istringstream lines(text);
    while (std::getline(lines, line) && line.find("CONSUMER") == std::string::npos) {
    }
    ASSERT_TRUE(std::getline(lines, line)) << text;
    const std::regex top(R"(^source\s+192\.0\.2\.11\s+(\d+)\s+(\d+)%)");
    ASSERT_TRUE(std::regex_search(line, m, top)) << "the client on top:\n" << text;
    const double entries = std::stod(m[1].str());
    EXPECT_GE(entries, 200);
    EXPECT_NEAR(std::stod(m[2].str()), 100 * entries / in_use, 1) << text;
    EXPECT_GE(std::stod(m[2].str()), 90) << text;
}

// A port free now in `ns` (bound to 0, then let go).
int free_port(const Namespace& ns) {
    int fd = ns.socket(AF_INET, SOCK_STREAM);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

// The value of one sample line (`name{labels} value`) in an exposition, or -1.
double metric(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

TEST_F(Pressure, AllNetnsLabelsEachNamespacesTableInPrometheusAndSumsTheFrame) {
    udp_burst(200);  // entries in b (its output) and in a (forwarded)
    Namespace own{"own"};
    Sandbox sandbox{{&net.a, &net.b, &own}};
    const int port = free_port(own);
    Flowtop ft(own,
               {"--all-netns", "-o", "json", "-c", "40", "-t", "0.3", "-n", "-G", "--prometheus",
                "127.0.0.1:" + std::to_string(port)},
               0, &sandbox);
    const std::string a_entries = "flowtop_conntrack_entries{netns=\"" + net.a.name() + "\"}";
    std::string text;
    double from_flowtop = -1;
    std::uint64_t in_a = 0;
    for (int i = 0; i < 30; ++i) {
        auto frame = ft.next_frame();
        ASSERT_TRUE(frame) << ft.stderr_text();
        sh(own.exec("curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics"), &text);
        from_flowtop = metric(text, a_entries);
        in_a = conntrack_count();
        if (from_flowtop == static_cast<double>(in_a) && frame->frame["namespaces"] == 3) {
            // The frame sums the namespaces: at least a's and b's bursts.
            EXPECT_GE(frame->frame["ct_count"].get<std::uint64_t>(), 2 * 200u);
            break;
        }
    }
    EXPECT_EQ(from_flowtop, static_cast<double>(in_a)) << text;
    EXPECT_GE(from_flowtop, 200);
    EXPECT_GT(metric(text, "flowtop_conntrack_entries_limit{netns=\"" + net.a.name() + "\"}"), 0)
        << text;
    EXPECT_GE(
        metric(text, "flowtop_conntrack_stat_total{kind=\"drop\",netns=\"" + net.b.name() + "\"}"),
        0)
        << text;
    std::string check;
    const int rc = sh(own.exec("sh -c 'curl -s http://127.0.0.1:" + std::to_string(port) +
                               "/metrics | promtool check metrics' 2>&1"),
                      &check);
    EXPECT_EQ(rc, 0) << check;
    ft.signal(SIGTERM);
    ft.wait();
}

}  // namespace
}  // namespace flowtop::test
