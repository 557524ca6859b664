#pragma once
// The enrichment step of every tick: service names, GeoIP and reverse DNS written into rows as
// string ids. Runs on the writer thread and never blocks there: GeoIP and DNS lookups go to
// their own threads through bounded queues, and answers are cached by address.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
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
    // The first lookups of a tick run inline (about 2 us each with the default databases,
    // bench/geoip_bench), so a small table is complete in its first frame; the rest go to the
    // worker thread, so a burst of new destinations never stalls the writer.
    std::size_t geo_inline_per_tick = 500;
    std::size_t geo_queue = 32768;     // GeoIP lookups waiting for the worker thread
    std::size_t cache_limit = 200000;  // addresses remembered (GeoIP and DNS each)
    std::chrono::seconds dns_positive_ttl{3600};
    std::chrono::seconds dns_negative_ttl{300};
    std::chrono::seconds dns_retry_after{30};  // a query dropped or unanswered is asked again
};

struct EnricherStats {
    std::uint64_t geo_lookups = 0;  // addresses looked up (inline or by the worker)
    std::uint64_t geo_dropped = 0;  // ticks on which its queue filled up: the rest waited
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
        static GeoIds intern(StringPool& strings, const GeoResult& r);
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
    std::shared_ptr<const GeoIp> geo_db_;
    std::unique_ptr<GeoWorker> geo_;
    std::size_t geo_inline_left_ = 0;
    std::unique_ptr<DnsResolver> dns_;
    EnricherConfig config_;
    EnricherStats stats_;
    std::unordered_map<std::uint32_t, StrId> service_ids_;  // proto << 16 | port
    std::unordered_map<AddrKey, GeoIds, AddrHash> geo_cache_;
    std::unordered_map<AddrKey, NameEntry, AddrHash> names_;
    std::unordered_set<AddrKey, AddrHash> geo_pending_;  // posted, no answer yet
    void drain_geo(StringPool& strings);
    bool geo_full_ = false;
    bool names_swept_ = false;
};

}  // namespace flowtop::enrich
