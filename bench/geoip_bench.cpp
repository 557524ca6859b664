// GeoIP cost on the writer: raw lookups/s over 100k distinct destinations, then the enricher's
// tick time and cache hit rate with 100k flows (first ticks fill, later ticks hit the cache).
//   geoip_bench [--flows N] [mmdb files...]   (default: the GeoIP search path)
#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/enrich/enricher.hpp"
#include "flowtop/table/flow_table.hpp"

using namespace flowtop;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
    std::size_t n = 100000;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--flows") && i + 1 < argc)
            n = std::strtoul(argv[++i], nullptr, 10);
        else
            files.emplace_back(argv[i]);
    }
    std::vector<std::string> notes;
    auto geo = enrich::GeoIp::open(files, notes);
    for (const auto& note : notes) std::fprintf(stderr, "note: %s\n", note.c_str());
    if (geo.empty()) {
        std::fprintf(stderr, "no GeoIP database: run scripts/install-geoip or pass files\n");
        return 1;
    }
    for (const auto& db : geo.databases()) std::printf("db %s\n", db.path().c_str());

    // Distinct global unicast IPv4 destinations (no packet is sent: lookups only).
    std::mt19937 rng(42);
    std::vector<Addr> addrs;
    addrs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t a;
        do {
            a = rng();
        } while ((a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 24) >= 224);
        addrs.push_back(Addr::v4(htonl(a)));
    }

    auto t0 = Clock::now();
    std::size_t found = 0;
    for (const auto& a : addrs) found += !geo.lookup(a, Family::ipv4).country.empty();
    double raw_ms = ms_since(t0);
    std::printf(
        "raw lookups: %zu in %.1f ms = %.0f lookups/s (%.2f us each), %.1f%% with a country\n", n,
        raw_ms, n / (raw_ms / 1000), raw_ms * 1000 / n, 100.0 * found / n);

    enrich::Enricher enricher(enrich::ServiceTable{}, std::move(geo), nullptr);
    table::FlowTable table;
    const auto src = parse_addr("192.168.1.2")->first;
    for (std::size_t i = 0; i < n; ++i) {
        ct::FlowRecord r;
        r.id = static_cast<std::uint32_t>(i + 1);
        r.kind = ct::MsgKind::created;
        r.proto = IPPROTO_TCP;
        r.orig = {src, addrs[i], static_cast<std::uint16_t>(1024 + i % 60000), 443};
        r.reply = {addrs[i], src, 443, r.orig.sport};
        table.apply(r, 1);
    }
    StringPool strings;
    double worst = 0;
    int ticks_to_fill = 0;
    // Ticks 100 ms apart: the worker fills in between, the writer only drains and posts.
    for (int tick = 1; tick <= 30 && !ticks_to_fill; ++tick) {
        if (tick > 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        auto t = Clock::now();
        table::tick_with(enricher, table, strings,
                         static_cast<std::uint64_t>(tick) * 1'000'000'000);
        double ms = ms_since(t);
        worst = std::max(worst, ms);
        std::size_t pending = 0;
        table.for_each([&](const table::FlowRow& r) { pending += r.dst_country == k_no_string; });
        if (pending <= n - found && !ticks_to_fill) ticks_to_fill = tick;
        std::printf("tick %2d: %6.1f ms, rows without country %zu\n", tick, ms, pending);
    }
    const auto& s = enricher.stats();
    auto t = Clock::now();
    table::tick_with(enricher, table, strings, 99'000'000'000);
    std::printf("steady tick (all cached): %.1f ms\n", ms_since(t));
    std::printf(
        "enricher: %llu lookups, %llu dropped (queue full), %llu cache hits, hit rate "
        "%.1f%%, worst tick %.1f ms, filled after %d ticks\n",
        static_cast<unsigned long long>(s.geo_lookups),
        static_cast<unsigned long long>(s.geo_dropped),
        static_cast<unsigned long long>(s.geo_cache_hits),
        100.0 * s.geo_cache_hits / static_cast<double>(s.geo_cache_hits + s.geo_lookups), worst,
        ticks_to_fill);
    return 0;
}
