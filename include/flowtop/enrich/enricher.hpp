#pragma once
// The enrichment step of every tick: service names, GeoIP and reverse DNS written into rows as
// string ids. Runs on the writer thread and never blocks there: DNS goes to its own thread
// through bounded queues; GeoIP lookups are cached and capped per tick.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "flowtop/enrich/dns.hpp"
#include "flowtop/enrich/geoip.hpp"
#include "flowtop/enrich/services.hpp"
#include "flowtop/table/collector.hpp"

namespace flowtop::enrich {

struct EnricherConfig {
    // Private, loopback, link-local, documentation... addresses get their label (country "--")
    // even without a database; off with -G.
    bool label_special = true;
    // GeoIP lookups done per tick at most; the rest wait for the next tick. One lookup costs
    // about a microsecond (bench/geoip_bench), so a burst of new addresses costs < 20 ms.
    std::size_t geo_lookups_per_tick = 20000;
    std::size_t cache_limit = 200000;  // addresses remembered (GeoIP and DNS each)
    std::chrono::seconds dns_positive_ttl{3600};
    std::chrono::seconds dns_negative_ttl{300};
    std::chrono::seconds dns_retry_after{30};  // a query dropped or unanswered is asked again
};

struct EnricherStats {
    std::uint64_t geo_lookups = 0;
    std::uint64_t geo_cache_hits = 0;
    std::uint64_t dns_posted = 0;
    std::uint64_t dns_dropped = 0;  // the query queue was full: retried later
    std::uint64_t dns_answers = 0;
};

class Enricher : public table::TickHook {
public:
    // Any of geo (empty) and dns (null) may be absent: that enrichment is off.
    Enricher(ServiceTable services, GeoIp geo, std::unique_ptr<DnsResolver> dns,
             EnricherConfig config = {});
    void on_tick(table::FlowTable& table, StringPool& strings, std::uint64_t now_ns) override;
    const EnricherStats& stats() const noexcept { return stats_; }

private:
    struct GeoIds {
        StrId country = k_no_string;
        StrId city = k_no_string;
        StrId org = k_no_string;
        std::uint32_t asn = 0;
    };
    struct NameEntry {
        StrId name = k_no_string;  // k_no_string: negative or still pending
        std::uint64_t expires_ns = 0;
        bool pending = false;
    };
    // IPv4 1.2.3.4 and IPv6 102:304:: have the same bytes: the family is part of the key.
    struct AddrKey {
        Addr addr;
        Family family;
        bool operator==(const AddrKey&) const = default;
    };
    struct AddrHash {
        std::size_t operator()(const AddrKey& k) const noexcept;
    };

    StrId service_for(const table::FlowRow& row, StringPool& strings);
    const GeoIds* geo_for(const Addr& addr, Family family, StringPool& strings);
    StrId name_for(const Addr& addr, Family family, std::uint64_t now_ns);
    void drain_dns(StringPool& strings, std::uint64_t now_ns);

    ServiceTable services_;
    GeoIp geo_;
    std::unique_ptr<DnsResolver> dns_;
    EnricherConfig config_;
    EnricherStats stats_;
    std::unordered_map<std::uint32_t, StrId> service_ids_;  // proto << 16 | port
    std::unordered_map<AddrKey, GeoIds, AddrHash> geo_cache_;
    std::unordered_map<AddrKey, NameEntry, AddrHash> names_;
    std::size_t geo_budget_ = 0;
};

}  // namespace flowtop::enrich
