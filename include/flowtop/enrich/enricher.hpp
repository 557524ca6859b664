#pragma once
// The enrichment step of every tick: service names, GeoIP and reverse DNS written into rows as
// string ids. Runs on the writer thread and never blocks there: GeoIP and DNS lookups go to
// their own threads through bounded queues, and answers are cached by address.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flowtop/enrich/dns.hpp"
#include "flowtop/enrich/geoip.hpp"
#include "flowtop/enrich/services.hpp"
#include "flowtop/table/tick.hpp"

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
    // How often the GeoIP files are checked for a replacement or truncation (a stat each).
    std::chrono::milliseconds geo_check_every{1000};
    // Notes found while running (a GeoIP file changed): written to stderr at once (batch
    // mode), or kept for take_notes() (the live view owns the terminal).
    bool notes_at_once = false;
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
    // Enriches the flows created this tick, those whose answers arrived, those that waited for
    // a full queue, and the rolling pass's slice (names expire).
    void on_tick(table::TickContext& tick) override;
    std::chrono::milliseconds full_pass_period() const noexcept override;
    const EnricherStats& stats() const noexcept { return stats_; }
    // Notes kept while running (see EnricherConfig::notes_at_once); any thread.
    std::vector<std::string> take_notes();
    bool has_dns() const noexcept { return dns_ != nullptr; }
    // From the UI thread (key n): while paused no new lookups are posted; the names already
    // known stay on the rows.
    void set_dns_paused(bool paused) noexcept {
        dns_paused_.store(paused, std::memory_order_relaxed);
    }

  private:
    struct GeoIds {
        StrId country = k_no_string;
        StrId country_name = k_no_string;
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

    // What a lookup that has no answer yet does with the row that asked.
    enum class Wait : std::uint8_t { none, answer, retry };

    StrId service_for(const table::FlowRow& row, StringPool& strings);
    const GeoIds* geo_for(const Addr& addr, Family family, StringPool& strings, Wait& wait);
    StrId name_for(const Addr& addr, Family family, std::uint64_t now_ns, Wait& wait);
    void drain_dns(StringPool& strings, std::uint64_t now_ns);
    void enrich_row(table::TickContext& tick, ct::FlowKey key);
    void wait_for(std::unordered_map<AddrKey, std::vector<ct::FlowKey>, AddrHash>& waiting,
                  const AddrKey& addr, ct::FlowKey key);
    void wake(std::unordered_map<AddrKey, std::vector<ct::FlowKey>, AddrHash>& waiting,
              const AddrKey& addr);

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
    // Rows waiting for an address's answer; woken into recheck_ when it comes.
    std::unordered_map<AddrKey, std::vector<ct::FlowKey>, AddrHash> geo_waiting_;
    std::unordered_map<AddrKey, std::vector<ct::FlowKey>, AddrHash> dns_waiting_;
    std::vector<ct::FlowKey> recheck_;  // answers came: visit these rows this tick
    std::vector<ct::FlowKey> retry_;    // a queue was full: visit these rows next tick
    std::vector<ct::FlowKey> visiting_;
    void drain_geo(StringPool& strings);
    bool geo_full_ = false;
    bool names_swept_ = false;
    std::uint64_t geo_checked_ns_ = 0;
    void check_geo_files(std::uint64_t now_ns);
    std::mutex notes_mutex_;
    std::vector<std::string> notes_;
    std::atomic<bool> dns_paused_{false};
};

}  // namespace flowtop::enrich
