// flowtop --batch against the real kernel: namespaces, veth, nft, real traffic, the built
// binary. Compared with what `conntrack -L` says and with the bytes the test itself sent.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <regex>

#include "harness.hpp"

using namespace flowtop::test;

namespace {

// Both directions' byte counters of one flow, as `conntrack -L` prints them.
struct KernelCounters {
    long long orig = -1, reply = -1;
};

KernelCounters kernel_counters(const Namespace& ns, const std::string& filter) {
    std::string out;
    sh(ns.exec("conntrack -L " + filter + " 2>/dev/null"), &out);
    KernelCounters k;
    std::smatch m;
    std::regex bytes(R"(bytes=(\d+))");
    auto it = std::sregex_iterator(out.begin(), out.end(), bytes);
    if (it != std::sregex_iterator()) k.orig = std::stoll((*it)[1]);
    if (++it != std::sregex_iterator()) k.reply = std::stoll((*it)[1]);
    return k;
}

// The flow to `dport` in the first frame (within `frames`) that shows it, or null.
Json find_flow(Flowtop& ft, const std::string& proto, int dport, int frames,
               const std::function<bool(const Json&)>& accept = nullptr) {
    for (int i = 0; i < frames; ++i) {
        auto f = ft.next_frame();
        if (!f) return nullptr;
        for (const auto& flow : f->find(proto, dport))
            if (!accept || accept(flow)) return flow;
    }
    return nullptr;
}

constexpr long long k_one_packet = 1600;  // a full-size segment with headers, and then some

class Batch : public ::testing::Test {
  protected:
    TestNet net;
};

void transfer_is_counted_like_conntrack(TestNet& net, bool ipv6) {
    Flowtop ft(net.a, {"-o", "json", "-c", "40", "-t", "0.5"});
    ASSERT_TRUE(ft.next_frame()) << ft.stderr_text();  // running: accounting is on from here
    TcpTransfer t(net, ipv6, 5001, 5'000'000, 50'000);
    // Wait for two frames in a row with the same counters: the transfer has settled.
    Json last = nullptr;
    Json settled = nullptr;
    for (int i = 0; i < 30 && settled.is_null(); ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        auto flows = f->find("tcp", 5001);
        if (flows.empty()) continue;
        const Json& flow = flows.front();
        if (!last.is_null() && flow["orig_bytes"] == last["orig_bytes"] &&
            flow["reply_bytes"] == last["reply_bytes"])
            settled = flow;
        last = flow;
    }
    ASSERT_FALSE(settled.is_null()) << "the transfer never showed up settled";
    EXPECT_EQ(settled["family"], ipv6 ? "ipv6" : "ipv4");
    EXPECT_EQ(settled["src"], ipv6 ? TestNet::b6 : TestNet::b4);
    EXPECT_EQ(settled["dst"], ipv6 ? TestNet::a6 : TestNet::a4);
    EXPECT_EQ(settled["sport"], t.client_port());
    EXPECT_EQ(settled["state"], "ESTABLISHED");
    const long long orig = settled["orig_bytes"].get<long long>();
    const long long reply = settled["reply_bytes"].get<long long>();
    EXPECT_GE(orig, 5'000'000);
    EXPECT_GE(reply, 50'000);
    EXPECT_GT(settled["orig_packets"].get<long long>(), 0);
    auto k = kernel_counters(net.a, std::string("-p tcp --dport 5001 ") + (ipv6 ? "-f ipv6" : ""));
    EXPECT_NEAR(orig, k.orig, k_one_packet);
    EXPECT_NEAR(reply, k.reply, k_one_packet);
}

}  // namespace

TEST_F(Batch, TcpTransferIsCountedBothWaysLikeConntrackIPv4) {
    transfer_is_counted_like_conntrack(net, false);
}

TEST_F(Batch, TcpTransferIsCountedBothWaysLikeConntrackIPv6) {
    transfer_is_counted_like_conntrack(net, true);
}

TEST_F(Batch, UdpAndIcmpFlowsCarryTheirProtocol) {
    Flowtop ft(net.a, {"-o", "json", "-c", "20", "-t", "0.5"});
    ASSERT_TRUE(ft.next_frame());
    must(net.b.exec("sh -c 'echo hello | socat -u - UDP:198.51.100.1:5353'"));
    must(net.b.exec("ping -c 1 -W 2 198.51.100.1 >/dev/null"));
    must(net.b.exec("ping -6 -c 1 -W 2 2001:db8::1 >/dev/null"));
    bool udp = false, icmp = false, icmpv6 = false;
    for (int i = 0; i < 10 && !(udp && icmp && icmpv6); ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        for (const auto& flow : f->flows) {
            if (flow["proto"] == "udp" && flow["dport"] == 5353) {
                udp = true;
                EXPECT_EQ(flow["state"], nullptr);
                EXPECT_GE(flow["orig_bytes"].get<long long>(), 6 + 28);
            }
            if (flow["proto"] == "icmp") {
                icmp = true;
                EXPECT_EQ(flow["sport"], nullptr);
                EXPECT_EQ(flow["icmp_type"], 8);
            }
            if (flow["proto"] == "icmpv6") {
                icmpv6 = true;
                EXPECT_EQ(flow["family"], "ipv6");
            }
        }
    }
    EXPECT_TRUE(udp);
    EXPECT_TRUE(icmp);
    EXPECT_TRUE(icmpv6);
}

TEST_F(Batch, ShortTransferBetweenFramesIsReportedClosedWithItsFullCounts) {
    Flowtop ft(net.a, {"-o", "json", "-c", "10", "-t", "2"});
    ASSERT_TRUE(ft.next_frame());
    {
        TcpTransfer t(net, false, 5002, 300'000, 3'000);
    }  // closed at once: the whole life of the flow falls between two frames
    Json flow = find_flow(ft, "tcp", 5002, 3);
    ASSERT_FALSE(flow.is_null());
    EXPECT_EQ(flow["closed"], true);
    EXPECT_GE(flow["orig_bytes"].get<long long>(), 300'000);
    EXPECT_GE(flow["reply_bytes"].get<long long>(), 3'000);
    auto k = kernel_counters(net.a, "-p tcp --dport 5002");
    if (k.orig >= 0) {  // still in TIME_WAIT in the kernel: the counts must agree exactly
        EXPECT_EQ(flow["orig_bytes"].get<long long>(), k.orig);
        EXPECT_EQ(flow["reply_bytes"].get<long long>(), k.reply);
    }
}

TEST_F(Batch, DeletedFlowAppearsOnceMoreClosedThenNoMore) {
    Flowtop ft(net.a, {"-o", "json", "-c", "20", "-t", "0.5"});
    ASSERT_TRUE(ft.next_frame());
    must(net.b.exec("sh -c 'head -c 2000 /dev/zero | socat -u - UDP:198.51.100.1:5354'"));
    Json seen =
        find_flow(ft, "udp", 5354, 6, [](const Json& f) { return !f["orig_bytes"].is_null(); });
    ASSERT_FALSE(seen.is_null());
    must(net.a.exec("conntrack -D -p udp --dport 5354 >/dev/null 2>&1"));
    int closed_frames = 0;
    bool gone_after = false;
    for (int i = 0; i < 6; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        auto flows = f->find("udp", 5354);
        if (flows.empty()) {
            gone_after = closed_frames > 0;
            if (gone_after) break;
            continue;
        }
        if (flows.front()["closed"] == true) {
            ++closed_frames;
            EXPECT_EQ(flows.front()["orig_bytes"], seen["orig_bytes"]) << "last counters kept";
        }
    }
    EXPECT_EQ(closed_frames, 1);
    EXPECT_TRUE(gone_after);
}

TEST_F(Batch, FlowsOlderThanFlowtopLeaveOnceConntrackDropsThem) {
    // Created before flowtop: no events will ever come for it, and it has no counters.
    net.a.set_sysctl("net.netfilter.nf_conntrack_udp_timeout", "3");
    must(net.b.exec("sh -c 'echo old | socat -u - UDP:198.51.100.1:5355'"));
    Flowtop ft(net.a, {"-o", "json", "-c", "12", "-t", "1"});
    auto first = ft.next_frame();
    ASSERT_TRUE(first);
    auto flows = first->find("udp", 5355);
    ASSERT_EQ(flows.size(), 1u);
    EXPECT_TRUE(flows.front()["orig_bytes"].is_null()) << "unknown, not 0";
    EXPECT_TRUE(flows.front()["orig_rate"].is_null());
    bool left = false;
    for (int i = 0; i < 8 && !left; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        left = f->find("udp", 5355).empty();
    }
    EXPECT_TRUE(left);
}

TEST_F(Batch, FamilyAndProtocolFlagsKeepExactlyTheirFlows) {
    // Accounting off is fine here: these flows only need to exist.
    TcpTransfer tcp4(net, false, 6001, 1000, 1000);
    TcpTransfer tcp6(net, true, 6002, 1000, 1000);
    must(net.b.exec("sh -c 'echo x | socat -u - UDP:198.51.100.1:6003'"));
    must(net.b.exec("sh -c 'echo x | socat -u - UDP6:[2001:db8::1]:6004'"));
    must(net.b.exec("ping -c 1 -W 2 198.51.100.1 >/dev/null"));
    must(net.b.exec("ping -6 -c 1 -W 2 2001:db8::1 >/dev/null"));
    auto frame_with = [&](std::vector<std::string> flags) {
        std::vector<std::string> args = {"-o", "json", "-c", "1"};
        args.insert(args.end(), flags.begin(), flags.end());
        Flowtop ft(net.a, args);
        auto f = ft.next_frame();
        EXPECT_TRUE(f);
        std::multiset<std::string> seen;
        if (f)
            for (const auto& flow : f->flows)
                seen.insert(flow["proto"].get<std::string>() + "/" +
                            flow["family"].get<std::string>());
        return seen;
    };
    using Set = std::multiset<std::string>;
    EXPECT_EQ(frame_with({}),
              (Set{"tcp/ipv4", "tcp/ipv6", "udp/ipv4", "udp/ipv6", "icmp/ipv4", "icmpv6/ipv6"}));
    EXPECT_EQ(frame_with({"-4"}), (Set{"tcp/ipv4", "udp/ipv4", "icmp/ipv4"}));
    EXPECT_EQ(frame_with({"-6"}), (Set{"tcp/ipv6", "udp/ipv6", "icmpv6/ipv6"}));
    EXPECT_EQ(frame_with({"-T"}), (Set{"tcp/ipv4", "tcp/ipv6"}));
    EXPECT_EQ(frame_with({"-U"}), (Set{"udp/ipv4", "udp/ipv6"}));
    EXPECT_EQ(frame_with({"-4", "-T"}), (Set{"tcp/ipv4"}));
    EXPECT_EQ(frame_with({"-I"}), (Set{"icmp/ipv4", "icmpv6/ipv6"}));
}

namespace {

// Frame timestamps ("2026-11-22T23:59:59.123Z") as seconds within the day.
double seconds_of(const Json& frame) {
    std::string ts = frame["ts"];
    return std::stoi(ts.substr(11, 2)) * 3600.0 + std::stoi(ts.substr(14, 2)) * 60.0 +
           std::stod(ts.substr(17, 6));
}

void rates_follow_paced_traffic(TestNet& net, std::vector<std::string> extra) {
    std::vector<std::string> args = {"-o", "json", "-c", "7", "-t", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    Flowtop ft(net.a, args);
    ASSERT_TRUE(ft.next_frame());
    constexpr double k_rate = 400'000;  // bytes/s the sender paces itself to
    PacedSender sender(net, 7001, static_cast<std::size_t>(k_rate), 7s);
    std::vector<Frame> frames;
    for (int i = 0; i < 6; ++i) {
        auto f = ft.next_frame();
        ASSERT_TRUE(f);
        frames.push_back(*f);
    }
    int checked = 0;
    for (std::size_t i = 2; i < frames.size(); ++i) {  // after the first full tick
        auto flows = frames[i].find("tcp", 7001);
        ASSERT_EQ(flows.size(), 1u);
        ASSERT_TRUE(flows.front()["orig_rate"].is_number());
        const double rate = flows.front()["orig_rate"];
        EXPECT_GT(rate, k_rate / 2) << "frame " << i;
        EXPECT_LT(rate, k_rate * 2) << "frame " << i;
        ++checked;
    }
    EXPECT_GE(checked, 3);
}

}  // namespace

TEST_F(Batch, ThreeFramesComeAboutASecondApart) {
    Flowtop ft(net.a, {"-o", "json", "-c", "3", "-t", "1"});
    auto frames = ft.all_frames();
    ASSERT_EQ(frames.size(), 3u);
    for (std::size_t i = 1; i < frames.size(); ++i) {
        const double gap = seconds_of(frames[i].frame) - seconds_of(frames[i - 1].frame);
        EXPECT_GT(gap, 0.7);
        EXPECT_LT(gap, 1.5);
        EXPECT_EQ(frames[i].frame["seq"], frames[i - 1].frame["seq"].get<int>() + 1);
    }
    EXPECT_EQ(ft.wait(), 0);
}

TEST_F(Batch, RateOfAnOngoingTransferMatchesTheTraffic) { rates_follow_paced_traffic(net, {}); }

TEST_F(Batch, BusyFlowsKeepExactRatesBetweenFullSweeps) {
    // With full sweeps 30 s apart, only the batched re-read of busy flows feeds the rates.
    rates_follow_paced_traffic(net, {"--full-sweep", "30"});
}

TEST_F(Batch, LostEventsCountersAppearInEveryFrame) {
    Flowtop ft(net.a, {"-o", "json", "-c", "1"});
    auto f = ft.next_frame();
    ASSERT_TRUE(f);
    for (const char* key : {"events", "lost_events", "resyncs", "flows", "orig_rate", "reply_rate"})
        EXPECT_TRUE(f->frame.contains(key)) << key;
    EXPECT_EQ(f->frame["acct"], true);
}

TEST_F(Batch, CsvAndTableFormatsDescribeTheSameFlow) {
    TcpTransfer t(net, false, 6100, 1000, 1000);
    std::string csv, table;
    must(net.a.exec(std::string(FLOWTOP_BINARY) + " -o csv -c 1 > /tmp/ftt-csv-" + net.a.name()));
    must(
        net.a.exec(std::string(FLOWTOP_BINARY) + " --batch -c 1 > /tmp/ftt-table-" + net.a.name()));
    sh("cat /tmp/ftt-csv-" + net.a.name(), &csv);
    sh("cat /tmp/ftt-table-" + net.a.name(), &table);
    sh("rm -f /tmp/ftt-csv-" + net.a.name() + " /tmp/ftt-table-" + net.a.name());
    EXPECT_EQ(csv.rfind("ts,id,family,proto,state,src,sport,dst,dport,", 0), 0u) << csv;
    EXPECT_NE(csv.find(",tcp,ESTABLISHED,198.51.100.2,"), std::string::npos) << csv;
    EXPECT_NE(table.find("198.51.100.1:6100"), std::string::npos) << table;
    EXPECT_NE(table.find("ESTABLISHED"), std::string::npos) << table;
}

TEST_F(Batch, EmptyTableSaysWhyOnStderr) {
    Namespace bare("e");  // no rule uses conntrack here
    Flowtop ft(bare, {"-o", "json", "-c", "1"});
    EXPECT_EQ(ft.wait(), 0);
    EXPECT_NE(ft.stderr_text().find("only once a firewall rule uses conntrack"), std::string::npos);
}

TEST(Cli, UnknownFlagExitsTwoWithAHint) {
    std::string out;
    int rc = sh(std::string(FLOWTOP_BINARY) + " -X 2>&1", &out);
    EXPECT_EQ(rc, 2);
    EXPECT_NE(out.find("unknown option -X"), std::string::npos);
    EXPECT_NE(out.find("Try 'flowtop --help'"), std::string::npos);
    rc = sh(std::string(FLOWTOP_BINARY) + " -t abc 2>&1", &out);
    EXPECT_EQ(rc, 2);
    rc = sh(std::string(FLOWTOP_BINARY) + " --help", &out);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("Usage: flowtop"), std::string::npos);
}

TEST(Cli, UnprivilegedUserGetsAClearError) {
    Namespace ns("u");
    Flowtop ft(ns, {"-o", "json", "-c", "1"}, 65534);
    int status = ft.wait();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1);
    EXPECT_NE(ft.stderr_text().find("needs root (CAP_NET_ADMIN)"), std::string::npos)
        << ft.stderr_text();
}
