#include "flowtop/ui/batch_writer.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "flowtop/ui/flow_fields.hpp"

using namespace flowtop;

namespace {

table::Snapshot make_snapshot() {
    table::Snapshot s;
    s.strings = std::make_shared<StringPool>();
    s.stats.seq = 2;
    s.stats.time_ns = 1795391283000000000ull;  // 2026-11-22T...
    s.stats.events = 12;
    s.stats.lost_events = 1;
    s.stats.resyncs = 1;
    s.stats.acct_on = true;
    table::FlowRow tcp{};
    tcp.ct.id = 42;
    tcp.ct.family = Family::ipv4;
    tcp.ct.proto = IPPROTO_TCP;
    tcp.ct.tcp_state = 3;
    tcp.ct.orig.src = parse_addr("198.51.100.2")->first;
    tcp.ct.orig.dst = parse_addr("198.51.100.1")->first;
    tcp.ct.orig.sport = 40000;
    tcp.ct.orig.dport = 5001;
    tcp.ct.reply.src = tcp.ct.orig.dst;
    tcp.ct.reply.dst = tcp.ct.orig.src;
    tcp.ct.reply.sport = 5001;
    tcp.ct.reply.dport = 40000;
    tcp.ct.has_counters = true;
    tcp.ct.orig_counters = {3500, 5'000'000};
    tcp.ct.reply_counters = {800, 50'000};
    tcp.rate_known = true;
    tcp.orig_rate = 1'000'000;
    tcp.reply_rate = 10'000;
    tcp.first_seen_ns = s.stats.time_ns - 2'000'000'000ull;
    s.rows.push_back(tcp);
    table::FlowRow old{};  // a flow older than accounting: no counters
    old.ct.id = 7;
    old.ct.family = Family::ipv6;
    old.ct.proto = IPPROTO_ICMPV6;
    old.ct.orig.src = parse_addr("2001:db8::2")->first;
    old.ct.orig.dst = parse_addr("2001:db8::1")->first;
    old.ct.reply.src = old.ct.orig.dst;
    old.ct.reply.dst = old.ct.orig.src;
    old.closed = old.gone = true;
    old.first_seen_ns = s.stats.time_ns;
    s.rows.push_back(old);
    return s;
}

std::string render(ui::OutputFormat format, const table::Snapshot& s) {
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* f = open_memstream(&buf, &len);
    auto w = ui::make_batch_writer(format, f, {});
    std::vector<const table::FlowRow*> rows;
    for (const auto& r : s.rows) rows.push_back(&r);
    w->write_frame(s, rows);
    std::fclose(f);
    std::string out(buf, len);
    free(buf);
    return out;
}

}  // namespace

TEST(BatchWriter, JsonHasAFrameLineThenOneObjectPerFlow) {
    auto out = render(ui::OutputFormat::json, make_snapshot());
    auto first_nl = out.find('\n');
    std::string frame = out.substr(0, first_nl);
    EXPECT_NE(frame.find("\"type\":\"frame\""), std::string::npos);
    EXPECT_NE(frame.find("\"flows\":2"), std::string::npos);
    EXPECT_NE(frame.find("\"lost_events\":1"), std::string::npos);
    EXPECT_NE(frame.find("\"resyncs\":1"), std::string::npos);
    EXPECT_NE(frame.find("\"orig_bytes\":5000000"), std::string::npos);
    EXPECT_NE(frame.find("\"ts\":\"2026-"), std::string::npos);
    std::string tcp = out.substr(first_nl + 1, out.find('\n', first_nl + 1) - first_nl - 1);
    for (const char* kv :
         {"\"type\":\"flow\"", "\"id\":42", "\"family\":\"ipv4\"", "\"proto\":\"tcp\"",
          "\"state\":\"ESTABLISHED\"", "\"src\":\"198.51.100.2\"", "\"sport\":40000",
          "\"dst\":\"198.51.100.1\"", "\"dport\":5001", "\"reply_src\":\"198.51.100.1\"",
          "\"reply_dst\":\"198.51.100.2\"", "\"orig_bytes\":5000000", "\"orig_packets\":3500",
          "\"reply_bytes\":50000", "\"reply_packets\":800", "\"orig_rate\":1000000.0",
          "\"reply_rate\":10000.0", "\"age_s\":2.0", "\"closed\":false"})
        EXPECT_NE(tcp.find(kv), std::string::npos) << kv << " in " << tcp;
}

TEST(BatchWriter, JsonCountersAreNullNotZeroWithoutAccounting) {
    auto out = render(ui::OutputFormat::json, make_snapshot());
    auto line = out.substr(out.rfind("{\"type\":\"flow\""));
    for (const char* kv :
         {"\"orig_bytes\":null", "\"reply_packets\":null", "\"orig_rate\":null", "\"state\":null",
          "\"sport\":null", "\"proto\":\"icmpv6\"", "\"family\":\"ipv6\"", "\"closed\":true"})
        EXPECT_NE(line.find(kv), std::string::npos) << kv << " in " << line;
}

TEST(BatchWriter, CsvHasAHeaderWithTheFlowKeysOnce) {
    auto s = make_snapshot();
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* f = open_memstream(&buf, &len);
    auto w = ui::make_batch_writer(ui::OutputFormat::csv, f, {});
    std::vector<const table::FlowRow*> rows{&s.rows[0]};
    w->write_frame(s, rows);
    w->write_frame(s, rows);
    std::fclose(f);
    std::string out(buf, len);
    free(buf);
    EXPECT_EQ(out.rfind("ts,id,family,proto,state,src,sport,dst,dport,", 0), 0u);
    EXPECT_EQ(out.find("ts,id", 1), std::string::npos);
    auto lines = std::count(out.begin(), out.end(), '\n');
    EXPECT_EQ(lines, 3);
    auto row = out.substr(out.find('\n') + 1);
    EXPECT_NE(row.find(",42,ipv4,tcp,ESTABLISHED,198.51.100.2,40000,198.51.100.1,5001,"),
              std::string::npos);
}

TEST(BatchWriter, TableIsAlignedAndShowsBothDirections) {
    auto out = render(ui::OutputFormat::table, make_snapshot());
    EXPECT_NE(out.find("ORIG BYTES"), std::string::npos);
    EXPECT_NE(out.find("REPLY BYTES"), std::string::npos);
    EXPECT_NE(out.find("198.51.100.2:40000"), std::string::npos);
    EXPECT_NE(out.find("5.0 MB"), std::string::npos);
    EXPECT_NE(out.find("50.0 kB"), std::string::npos);
    EXPECT_NE(out.find("1.0 MB/s"), std::string::npos);
    EXPECT_NE(out.find("lost 1"), std::string::npos);
    // Columns line up: "ORIG BYTES" ends where each row's byte count ends.
    auto header_start = out.find("PROTO");
    auto header = out.substr(header_start, out.find('\n', header_start) - header_start);
    auto tcp_start = out.find("tcp ");
    auto tcp = out.substr(tcp_start, out.find('\n', tcp_start) - tcp_start);
    EXPECT_EQ(header.find("ORIG BYTES") + 10, tcp.find("5.0 MB") + 6);
}

TEST(BatchWriter, JsonEscapesControlCharactersAndQuotes) {
    EXPECT_EQ(ui::json_escape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

TEST(FlowFields, HumanUnits) {
    EXPECT_EQ(ui::human_bytes(512), "512 B");
    EXPECT_EQ(ui::human_bytes(4900), "4.9 kB");
    EXPECT_EQ(ui::human_rate(1.2e6, false), "1.2 MB/s");
    EXPECT_EQ(ui::human_rate(4800, true), "38.4 kbit/s");
    EXPECT_EQ(ui::rfc3339(0), "1970-01-01T00:00:00.000Z");
}

TEST(FlowFields, ValuesComeInTheOrderOfTheKeys) {
    auto s = make_snapshot();
    std::vector<ui::Field> fields;
    ui::flow_fields(s, s.rows[0], fields);
    const auto& keys = ui::flow_field_keys();
    ASSERT_EQ(fields.size(), keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) EXPECT_STREQ(fields[i].key, keys[i]);
}

TEST(BatchWriter, ForwardedIsNullUntilAttributionHasDecidedIt) {
    auto s = make_snapshot();
    auto line = [&] {
        auto out = render(ui::OutputFormat::json, s);
        const auto at = out.find("{\"type\":\"flow\"");
        return out.substr(at, out.find('\n', at) - at);
    };
    EXPECT_NE(line().find("\"forwarded\":null"), std::string::npos) << line();
    s.rows[0].forwarded_known = true;
    s.rows[0].forwarded = true;
    EXPECT_NE(line().find("\"forwarded\":true"), std::string::npos) << line();
    s.rows[0].forwarded = false;
    EXPECT_NE(line().find("\"forwarded\":false"), std::string::npos) << line();
}

TEST(BatchWriter, TableNatColumnShowsTheMasqueradedSourceAndTheForwardsTarget) {
    auto s = make_snapshot();
    const auto plain = std::as_const(s.rows)[0];
    // A LAN client masqueraded to the router's WAN address: the reply goes back to that
    // address and the port NAT picked.
    auto snat = plain;
    snat.ct.id = 43;
    snat.ct.orig.src = parse_addr("192.0.2.1")->first;
    snat.ct.orig.dst = parse_addr("203.0.113.9")->first;
    snat.ct.orig.dport = 443;
    snat.ct.reply.src = snat.ct.orig.dst;
    snat.ct.reply.sport = 443;
    snat.ct.reply.dst = parse_addr("198.51.100.254")->first;
    snat.ct.reply.dport = 61000;
    snat.ct.has_status = true;
    snat.ct.status = 0xe | ct::k_status_src_nat;
    // A port forward: the reply comes from the internal server.
    auto dnat = plain;
    dnat.ct.id = 44;
    dnat.ct.orig.src = parse_addr("203.0.113.7")->first;
    dnat.ct.orig.sport = 50000;
    dnat.ct.orig.dst = parse_addr("198.51.100.254")->first;
    dnat.ct.orig.dport = 8080;
    dnat.ct.reply.src = parse_addr("192.0.2.10")->first;
    dnat.ct.reply.sport = 80;
    dnat.ct.reply.dst = dnat.ct.orig.src;
    dnat.ct.reply.dport = 50000;
    s.rows.clear();
    for (const auto& r : {plain, snat, dnat}) s.rows.push_back(r);
    const auto out = render(ui::OutputFormat::table, s);
    const auto line_of = [&](const std::string& needle) {
        const auto at = out.find(needle);
        if (at == std::string::npos) return std::string();
        const auto start = out.rfind('\n', at) + 1;
        return out.substr(start, out.find('\n', at) - start);
    };
    const auto header = line_of("PROTO");
    const auto column = header.find(" NAT ") + 1;  // not the one in DESTINATION
    ASSERT_NE(column, 0u) << out;
    const auto masq = line_of("192.0.2.1:40000");
    EXPECT_NE(masq.find("via 198.51.100.254:61000"), std::string::npos) << out;
    EXPECT_EQ(masq.find("to "), std::string::npos) << out;
    const auto forward = line_of("203.0.113.7:50000");
    EXPECT_NE(forward.find("to 192.0.2.10:80"), std::string::npos) << out;
    EXPECT_EQ(forward.find("via"), std::string::npos) << out;
    // No NAT: a dash, and the column starts where the header's does in every row.
    const auto none = line_of("198.51.100.2:40000");
    EXPECT_EQ(none.substr(column, 2), "- ") << out;
    EXPECT_EQ(masq.find("via"), column) << out;
    EXPECT_EQ(forward.find("to 192"), column) << out;
}
