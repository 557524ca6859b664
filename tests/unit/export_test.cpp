// The exporters' pure parts: IPFIX messages byte by byte, ended flows exactly once with final
// counters, Prometheus totals from changes and the label cap, option parsing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <set>
#include <sstream>

#include "flowtop/export/ended_flows.hpp"
#include "flowtop/export/flow_log.hpp"
#include "flowtop/export/ipfix.hpp"
#include "flowtop/export/prometheus.hpp"
#include "flowtop/table/flow_table.hpp"
#include "flowtop/ui/options.hpp"
#include "flowtop/util/error.hpp"

using namespace flowtop;
using namespace flowtop::exporters;
using ct::FlowRecord;
using ct::MsgKind;

namespace {

constexpr std::uint64_t k_s = 1'000'000'000;

std::uint16_t u16(const std::vector<std::byte>& b, std::size_t at) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(b[at]) << 8 |
                                      std::to_integer<unsigned>(b[at + 1]));
}
std::uint32_t u32(const std::vector<std::byte>& b, std::size_t at) {
    return static_cast<std::uint32_t>(u16(b, at)) << 16 | u16(b, at + 2);
}
std::uint64_t u64(const std::vector<std::byte>& b, std::size_t at) {
    return static_cast<std::uint64_t>(u32(b, at)) << 32 | u32(b, at + 4);
}

Addr v4(const char* text) { return parse_addr(text)->first; }

FlowRecord tcp(std::uint32_t id, MsgKind kind, std::uint8_t state, std::uint64_t ob,
               std::uint64_t rb) {
    FlowRecord r;
    r.id = id;
    r.kind = kind;
    r.proto = IPPROTO_TCP;
    r.tcp_state = state;
    r.orig = {v4("198.51.100.2"), v4("198.51.100.1"), 40000, 80};
    r.reply = {v4("198.51.100.1"), v4("198.51.100.2"), 80, 40000};
    r.has_counters = kind != MsgKind::updated;  // state events carry no counters
    r.orig_counters = {ob / 1000 + 1, ob};
    r.reply_counters = {rb / 1000 + 1, rb};
    return r;
}

constexpr std::uint8_t k_established = 3, k_time_wait = 7;

// Collects what EndedFlows reports, tick by tick.
class EndedHook : public table::TickHook {
  public:
    EndedFlows ended;
    std::vector<table::FlowRow> rows;
    void on_tick(table::TickContext& tick) override { ended.collect(tick, rows); }
};

}  // namespace

TEST(Ipfix, TemplatesDescribeBiflowRecordsWithReverseElements) {
    IpfixEncoder enc;
    const auto msg = enc.templates(7, 1234);
    ASSERT_GE(msg.size(), 20u);
    EXPECT_EQ(u16(msg, 0), 10);  // IPFIX
    EXPECT_EQ(u16(msg, 2), msg.size());
    EXPECT_EQ(u32(msg, 4), 1234u);
    EXPECT_EQ(u32(msg, 8), 0u);
    EXPECT_EQ(u32(msg, 12), 7u);
    EXPECT_EQ(u16(msg, 16), 2);  // template set
    EXPECT_EQ(u16(msg, 18), msg.size() - 16);
    std::size_t at = 20;
    std::map<std::uint16_t, std::vector<std::pair<std::uint16_t, std::uint32_t>>> templates;
    while (at < msg.size()) {
        const auto id = u16(msg, at), count = u16(msg, at + 2);
        at += 4;
        for (int i = 0; i < count; ++i) {
            std::uint16_t ie = u16(msg, at);
            std::uint32_t pen = 0;
            at += 4;
            if (ie & 0x8000) {
                pen = u32(msg, at);
                at += 4;
                ie &= 0x7fff;
            }
            templates[id].push_back({ie, pen});
        }
    }
    ASSERT_EQ(templates.size(), 4u);
    const auto& t4 = templates[k_template_v4];
    const std::vector<std::pair<std::uint16_t, std::uint32_t>> want4 = {{8, 0},
                                                                        {12, 0},
                                                                        {7, 0},
                                                                        {11, 0},
                                                                        {4, 0},
                                                                        {1, 0},
                                                                        {2, 0},
                                                                        {1, k_reverse_pen},
                                                                        {2, k_reverse_pen},
                                                                        {152, 0},
                                                                        {153, 0},
                                                                        {136, 0}};
    EXPECT_EQ(t4, want4);
    EXPECT_EQ(templates[k_template_v6][0].first, 27);
    EXPECT_EQ(templates[k_template_v6][1].first, 28);
    EXPECT_EQ(templates[k_template_v4_nat].back().first, 228);
    EXPECT_EQ(templates[k_template_v6_nat][12].first, 281);
}

TEST(Ipfix, DataMessagesStayUnderTheMtuAndSequenceNumbersCountRecords) {
    IpfixEncoder enc(1400);
    std::vector<IpfixFlow> flows(50);
    for (std::size_t i = 0; i < flows.size(); ++i) {
        flows[i].orig = {v4("198.51.100.2"), v4("203.0.113.9"), static_cast<std::uint16_t>(i), 443};
        flows[i].proto = IPPROTO_TCP;
        flows[i].orig_delta = {3, 1000 + i};
        flows[i].reply_delta = {2, 500};
        flows[i].start_ms = 1000;
        flows[i].end_ms = 2000;
    }
    std::vector<std::vector<std::byte>> out;
    enc.data(1, flows, 99, out);
    ASSERT_GE(out.size(), 3u);  // 62-byte records: 22 a message
    std::uint32_t expected_seq = 0;
    std::size_t records = 0;
    for (const auto& msg : out) {
        EXPECT_LE(msg.size(), 1400u);
        EXPECT_EQ(u16(msg, 2), msg.size());
        EXPECT_EQ(u32(msg, 8), expected_seq);
        EXPECT_EQ(u16(msg, 16), k_template_v4);
        const std::size_t n = (u16(msg, 18) - 4) / 62;
        expected_seq += static_cast<std::uint32_t>(n);
        records += n;
    }
    EXPECT_EQ(records, flows.size());
    EXPECT_EQ(enc.sequence(1), 50u);
    EXPECT_EQ(enc.sequence(2), 0u);  // per observation domain
    // The first record, field by field.
    const auto& m = out[0];
    EXPECT_EQ(u32(m, 20), ntohl(inet_addr("198.51.100.2")));
    EXPECT_EQ(u32(m, 24), ntohl(inet_addr("203.0.113.9")));
    EXPECT_EQ(u16(m, 28), 0);
    EXPECT_EQ(u16(m, 30), 443);
    EXPECT_EQ(std::to_integer<int>(m[32]), IPPROTO_TCP);
    EXPECT_EQ(u64(m, 33), 1000u);  // octets
    EXPECT_EQ(u64(m, 41), 3u);     // packets
    EXPECT_EQ(u64(m, 49), 500u);   // reverse octets
    EXPECT_EQ(u64(m, 57), 2u);
    EXPECT_EQ(u64(m, 65), 1000u);  // flowStartMilliseconds
    EXPECT_EQ(u64(m, 73), 2000u);
    EXPECT_EQ(std::to_integer<int>(m[81]), 3);  // end of flow
}

TEST(Ipfix, NatFlowsCarryPostTranslationAddressesAndPorts) {
    table::FlowRow row;
    row.ct = tcp(1, MsgKind::destroyed, k_time_wait, 5000, 9000);
    // Masqueraded: 10.0.0.5:40000 -> 203.0.113.9:80 leaves as 198.51.100.1:61000.
    row.ct.orig = {v4("192.0.2.5"), v4("203.0.113.9"), 40000, 80};
    row.ct.reply = {v4("203.0.113.9"), v4("198.51.100.1"), 80, 61000};
    row.ct.start_ns = 10 * k_s;
    row.ct.stop_ns = 12 * k_s + 500'000'000;
    const auto f = ipfix_flow(row, {}, {}, 20 * k_s, false);
    EXPECT_TRUE(f.nat);
    EXPECT_EQ(f.start_ms, 10'000u);
    EXPECT_EQ(f.end_ms, 12'500u);
    EXPECT_EQ(f.end_reason, EndReason::end_of_flow);
    IpfixEncoder enc;
    std::vector<std::vector<std::byte>> out;
    enc.data(1, std::span(&f, 1), 1, out);
    ASSERT_EQ(out.size(), 1u);
    const auto& m = out[0];
    EXPECT_EQ(u16(m, 16), k_template_v4_nat);
    EXPECT_EQ(u32(m, 82), ntohl(inet_addr("198.51.100.1")));  // postNATSourceIPv4Address
    EXPECT_EQ(u32(m, 86), ntohl(inet_addr("203.0.113.9")));   // postNATDestinationIPv4Address
    EXPECT_EQ(u16(m, 90), 61000);                             // postNAPTSourceTransportPort
    EXPECT_EQ(u16(m, 92), 80);

    row.ct.reply = {v4("203.0.113.9"), v4("192.0.2.5"), 80, 40000};
    EXPECT_FALSE(ipfix_flow(row, {}, {}, 20 * k_s, false).nat);
    // Interim: counters since the last record, ending now.
    const auto interim = ipfix_flow(row, {5, 4000}, {9, 8000}, 20 * k_s, true);
    EXPECT_EQ(interim.orig_delta.bytes, 1000u);
    EXPECT_EQ(interim.reply_delta.bytes, 1000u);
    EXPECT_EQ(interim.end_ms, 20'000u);
    EXPECT_EQ(interim.end_reason, EndReason::active_timeout);
}

TEST(Ipfix, TargetsNeedAHostAndAPort) {
    EXPECT_THROW(parse_target("4739", "--ipfix", nullptr, false), UsageError);
    EXPECT_THROW(parse_target("127.0.0.1:0", "--ipfix", nullptr, false), UsageError);
    EXPECT_THROW(parse_target("::1:4739", "--ipfix", nullptr, false), UsageError);
    EXPECT_EQ(parse_target("[::1]:4739", "--ipfix", nullptr, false).family, AF_INET6);
    EXPECT_EQ(parse_target(":9149", "--prometheus", "127.0.0.1", false).family, AF_INET);
}

TEST(EndedFlows, ATcpEndIsReportedOnceAfterItsCountersAreReRead) {
    table::FlowTable table;
    StringPool strings;
    EndedHook hook;
    table.apply(tcp(1, MsgKind::created, k_established, 0, 0), 1 * k_s);
    table::tick_with(hook, table, strings, 1 * k_s);
    table.apply(tcp(1, MsgKind::dump, k_established, 4000, 2000), 2 * k_s);
    table::tick_with(hook, table, strings, 2 * k_s);
    // TIME_WAIT arrives as an event without counters: not final yet.
    table.apply(tcp(1, MsgKind::updated, k_time_wait, 0, 0), 3 * k_s);
    table::tick_with(hook, table, strings, 3 * k_s);
    EXPECT_TRUE(hook.rows.empty());
    // The next re-read brings the last packets' counters.
    table.apply(tcp(1, MsgKind::dump, k_time_wait, 4100, 2100), 4 * k_s);
    table::tick_with(hook, table, strings, 4 * k_s);
    EXPECT_TRUE(hook.rows.empty());
    table::tick_with(hook, table, strings, 5 * k_s + 1);
    ASSERT_EQ(hook.rows.size(), 1u);
    EXPECT_EQ(hook.rows[0].ct.orig_counters.bytes, 4100u);
    EXPECT_EQ(hook.rows[0].ct.reply_counters.bytes, 2100u);
    // Its DESTROY later does not report it again.
    table.apply(tcp(1, MsgKind::destroyed, k_time_wait, 4100, 2100), 60 * k_s);
    table::tick_with(hook, table, strings, 60 * k_s);
    table.drop_gone();
    table::tick_with(hook, table, strings, 61 * k_s);
    EXPECT_EQ(hook.rows.size(), 1u);
    EXPECT_EQ(hook.ended.pending(), 0u);
}

TEST(EndedFlows, AFlowThatLeavesTheTableIsReportedAtOnceWithTheDestroysCounters) {
    table::FlowTable table;
    StringPool strings;
    EndedHook hook;
    FlowRecord udp = tcp(2, MsgKind::created, ct::k_no_tcp_state, 0, 0);
    udp.proto = IPPROTO_UDP;
    table.apply(udp, 1 * k_s);
    table::tick_with(hook, table, strings, 1 * k_s);
    udp.kind = MsgKind::destroyed;
    udp.orig_counters = {3, 300};
    udp.reply_counters = {2, 200};
    table.apply(udp, 2 * k_s);
    table::tick_with(hook, table, strings, 2 * k_s);
    ASSERT_EQ(hook.rows.size(), 1u);
    EXPECT_EQ(hook.rows[0].ct.orig_counters.bytes, 300u);
    EXPECT_TRUE(hook.rows[0].gone);
    // A TIME_WAIT flow whose DESTROY comes within the grace period: reported then, once.
    table.apply(tcp(3, MsgKind::created, k_established, 0, 0), 3 * k_s);
    table::tick_with(hook, table, strings, 3 * k_s);
    table.apply(tcp(3, MsgKind::updated, k_time_wait, 0, 0), 4 * k_s);
    table::tick_with(hook, table, strings, 4 * k_s);
    table.apply(tcp(3, MsgKind::destroyed, k_time_wait, 777, 888), 4 * k_s + 5);
    table::tick_with(hook, table, strings, 4 * k_s + 10);
    ASSERT_EQ(hook.rows.size(), 2u);
    EXPECT_EQ(hook.rows[1].ct.orig_counters.bytes, 777u);
    table.drop_gone();
    table::tick_with(hook, table, strings, 10 * k_s);
    EXPECT_EQ(hook.rows.size(), 2u);
}

namespace {

// Publishes frames of a table the test drives, as the writer would.
struct PromFixture {
    table::FlowTable table;
    std::shared_ptr<StringPool> strings = std::make_shared<StringPool>();
    table::SnapshotHub hub;
    PrometheusExporter prom;
    explicit PromFixture(PrometheusConfig config = {}) : prom(hub, with_port0(config)) {}
    static PrometheusConfig with_port0(PrometheusConfig c) {
        c.listen = "127.0.0.1:0";
        return c;
    }
    void tick(std::uint64_t now) {
        table::tick_with(prom, table, *strings, now);
        auto snap = std::make_shared<table::Snapshot>();
        snap->rows = table.rows();
        snap->strings = strings;
        snap->stats.orig_bytes_total =
            table.totals().live_orig_bytes + table.totals().departed_orig_bytes;
        hub.publish(snap);
        table.drop_gone();
    }
};

double value(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return -1;
}

}  // namespace

TEST(Prometheus, LabelTotalsKeepTheBytesOfFlowsThatEnded) {
    PromFixture f;
    FlowRecord a = tcp(1, MsgKind::created, k_established, 1000, 500);
    FlowRecord b = tcp(2, MsgKind::created, k_established, 2000, 700);
    f.table.apply(a, 1 * k_s);
    f.table.apply(b, 1 * k_s);
    f.tick(1 * k_s);
    a.kind = MsgKind::dump;
    a.orig_counters = {5, 1500};
    f.table.apply(a, 2 * k_s);
    b.kind = MsgKind::destroyed;
    b.orig_counters = {5, 2600};
    f.table.apply(b, 2 * k_s);
    f.tick(2 * k_s);
    f.tick(3 * k_s);  // b has left the table
    const auto text = f.prom.render();
    const std::string labels =
        "family=\"ipv4\",protocol=\"tcp\",dst_country=\"\",service=\"\",comm=\"\"}";
    EXPECT_EQ(value(text, "flowtop_flow_bytes_total{direction=\"orig\"," + labels), 1500 + 2600);
    EXPECT_EQ(value(text, "flowtop_flow_bytes_total{direction=\"reply\"," + labels), 500 + 700);
    EXPECT_EQ(value(text, "flowtop_flows{family=\"ipv4\",protocol=\"tcp\",state=\"ESTABLISHED\"}"),
              1);
    EXPECT_EQ(value(text, "flowtop_bytes_total{direction=\"orig\"}"), 1500 + 2600);
}

TEST(Prometheus, LabelValuesPastTheCapFoldIntoOtherAndAreCounted) {
    PromFixture f(PrometheusConfig{.max_label_values = 20});
    for (std::uint32_t id = 1; id <= 50; ++id) {
        f.table.apply(tcp(id, MsgKind::created, k_established, 100, 100), 1 * k_s);
        const StrId comm = f.strings->intern("proc" + std::to_string(id));
        f.table.set_enrichment(id, [&] {
            table::FlowEnrichment e;
            e.comm = comm;
            e.dst_country = f.strings->intern("\"quoted\\\n");
            return e;
        }());
    }
    f.tick(1 * k_s);
    const auto text = f.prom.render();
    std::set<std::string> comms;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto at = line.find("comm=\"");
        if (line.rfind("flowtop_flow_bytes_total", 0) != 0 || at == std::string::npos) continue;
        comms.insert(line.substr(at + 6, line.find('"', at + 6) - at - 6));
    }
    EXPECT_EQ(comms.size(), 21u);  // 20 values and "other"
    EXPECT_TRUE(comms.contains("other"));
    EXPECT_EQ(value(text, "flowtop_label_folded_total{label=\"comm\"}"), 30);
    // User data is escaped where it leaves.
    // The quote is escaped for the exposition; the newline never gets that far: the string pool
    // turns control characters into visible escapes (\x0a) as text from outside comes in.
    EXPECT_NE(text.find("dst_country=\"\\\"quoted\\\\"), std::string::npos);
    EXPECT_EQ(text.find("quoted\\\n"), std::string::npos);
    EXPECT_EQ(value(text, "flowtop_packets_total{direction=\"orig\"}"), 50 * 1);
}

TEST(FlowLog, RotateTakesASizeWithUnitsAndACount) {
    EXPECT_EQ(parse_rotate("100M,5"), std::make_pair(std::uint64_t{100} << 20, 5u));
    EXPECT_EQ(parse_rotate("4096,1"), std::make_pair(std::uint64_t{4096}, 1u));
    EXPECT_EQ(parse_rotate("4k,3").first, 4096u);
    EXPECT_THROW(parse_rotate("100M"), UsageError);
    EXPECT_THROW(parse_rotate("0,3"), UsageError);
    EXPECT_THROW(parse_rotate("10X,3"), UsageError);
    EXPECT_THROW(parse_rotate("10M,0"), UsageError);
}

namespace {
ui::Options parse(std::vector<std::string> args) {
    args.insert(args.begin(), "flowtop");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return ui::parse_options(static_cast<int>(args.size()), argv.data());
}
}  // namespace

TEST(ExportOptions, DaemonAndExportersParseAndConflictsAreUsageErrors) {
    const auto o =
        parse({"--daemon", "--prometheus", ":9149", "--ipfix", "192.0.2.1:4739",
               "--ipfix-active-timeout", "30", "--log", "/tmp/f.log", "--log-rotate", "1M,3"});
    EXPECT_TRUE(o.daemon);
    EXPECT_EQ(o.prometheus, ":9149");
    EXPECT_EQ(o.ipfix, "192.0.2.1:4739");
    EXPECT_EQ(o.ipfix_active_timeout, std::chrono::seconds(30));
    EXPECT_EQ(o.log_file, "/tmp/f.log");
    EXPECT_EQ(o.log_rotate_size, 1u << 20);
    EXPECT_EQ(o.log_rotate_count, 3u);
    EXPECT_THROW(parse({"--daemon", "-o", "json"}), UsageError);
    EXPECT_THROW(parse({"--daemon", "-c", "3"}), UsageError);
    EXPECT_THROW(parse({"--log-rotate", "1M,3"}), UsageError);
    EXPECT_THROW(parse({"--ipfix-active-timeout", "0"}), UsageError);
    EXPECT_THROW(parse({"--ipfix"}), UsageError);
}
