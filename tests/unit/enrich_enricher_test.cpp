#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "flowtop/enrich/enricher.hpp"
#include "flowtop/table/flow_table.hpp"
#include "mmdb_writer.hpp"

using namespace flowtop;
using namespace flowtop::enrich;

namespace {

ct::FlowRecord flow(std::uint32_t id, const char* src, const char* dst, std::uint8_t proto,
                    std::uint16_t dport) {
    ct::FlowRecord r;
    r.id = id;
    r.kind = ct::MsgKind::created;
    auto s = parse_addr(src);
    auto d = parse_addr(dst);
    r.family = s->second;
    r.proto = proto;
    r.orig = {s->first, d->first, 40000, dport};
    r.reply = {d->first, s->first, dport, 40000};
    return r;
}

struct Fixture {
    std::string dir;
    Fixture() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "flowtop-enr-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
        dir = tmpl;
    }
    ~Fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

// GeoIP answers come from a worker thread: tick until the rows are filled (bounded).
template <typename Done>
bool tick_until(Enricher& e, table::FlowTable& t, StringPool& strings, Done done) {
    for (int i = 0; i < 200; ++i) {
        table::tick_with(e, t, strings, 1'000'000'000ull * (i + 1));
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace

TEST(Enricher, FillsServiceAndGeoFieldsOnTheTick) {
    Fixture fx;
    auto [city, asn] = test::write_maxmind_fixtures(fx.dir);
    std::vector<std::string> notes;
    ServiceTable services;
    services.load_text("443, https\n", "tcp.conf", IPPROTO_TCP, notes);
    Enricher enricher(std::move(services), GeoIp::open({city, asn}, notes), nullptr);
    ASSERT_TRUE(notes.empty());

    table::FlowTable table;
    table.apply(flow(1, "192.168.1.10", "198.51.100.7", IPPROTO_TCP, 443), 1);
    table.apply(flow(2, "2001:db8:1::1", "2001:db8:1::99", IPPROTO_UDP, 443), 1);
    StringPool strings;
    ASSERT_TRUE(tick_until(enricher, table, strings, [&] {
        return table.find(1)->dst_country != k_no_string &&
               table.find(2)->dst_country != k_no_string;
    }));

    const auto* a = table.find(1);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(strings.get(a->service), "https");
    EXPECT_EQ(strings.get(a->dst_country), "NL");
    EXPECT_EQ(strings.get(a->dst_city), "Amsterdam");
    EXPECT_EQ(a->dst_asn, 64500u);
    EXPECT_EQ(strings.get(a->dst_org), "Example Transit");
    EXPECT_EQ(strings.get(a->src_country), "--");  // private source
    EXPECT_EQ(a->dst_name, k_no_string);           // no DNS
    const auto* b = table.find(2);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->service, k_no_string);  // 443/udp has no name here
    EXPECT_EQ(strings.get(b->dst_country), "JP");
    EXPECT_EQ(strings.get(b->src_country), "JP");

    // A second flow to the same destination is answered from the cache.
    table.apply(flow(3, "192.168.1.11", "198.51.100.7", IPPROTO_TCP, 443), 2);
    auto before = enricher.stats().geo_lookups;
    table::tick_with(enricher, table, strings, 2'000'000'000);
    EXPECT_EQ(strings.get(table.find(3)->dst_country), "NL");  // at once, from the cache
    EXPECT_EQ(enricher.stats().geo_lookups, before);  // its source is private: labelled inline
}

TEST(Enricher, BeyondTheInlineLookupsAFullQueueDropsAndRetriesLater) {
    Fixture fx;
    auto [city, asn] = test::write_maxmind_fixtures(fx.dir);
    std::vector<std::string> notes;
    EnricherConfig config;
    config.geo_queue = 5;
    config.geo_inline_per_tick = 3;
    Enricher enricher(ServiceTable{}, GeoIp::open({city}, notes), nullptr, config);
    table::FlowTable table;
    for (std::uint32_t i = 1; i <= 20; ++i) {
        std::string dst = "198.51.100." + std::to_string(i);
        table.apply(flow(i, "198.51.100.250", dst.c_str(), IPPROTO_TCP, 80), 1);
    }
    StringPool strings;
    auto filled = [&] {
        std::size_t n = 0;
        table.for_each([&](const table::FlowRow& r) { n += r.dst_country != k_no_string; });
        return n;
    };
    table::tick_with(enricher, table, strings, 1);
    EXPECT_GT(enricher.stats().geo_dropped, 0u);  // 21 addresses, 3 inline, room for 5
    EXPECT_TRUE(tick_until(enricher, table, strings, [&] { return filled() == 20; }));
}
