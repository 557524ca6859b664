#pragma once
// Private to the detectors: what every detector knows about a flow, hashable keys over plain
// bytes, sliding-window counters and the eviction of the oldest tracked entries.
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "alert_book.hpp"
#include "flowtop/detect/config.hpp"
#include "flowtop/detect/detector.hpp"
#include "flowtop/detect/local_net.hpp"
#include "flowtop/table/flow_row.hpp"
#include "flowtop/util/string_pool.hpp"

namespace flowtop::detect {

constexpr std::uint64_t k_ns = 1'000'000'000ull;
inline std::uint64_t ns_of(std::chrono::seconds s) {
    return static_cast<std::uint64_t>(s.count()) * k_ns;
}

// One changed flow as the detectors see it.
struct Facts {
    const table::FlowRow& row;
    ct::FlowKey key;
    bool src_local;   // orig.src is this host
    bool dst_local;   // orig.dst (or the NAT'ed reply source) is this host
    bool src_inside;  // orig.src is on an attached network
    bool dst_inside;
    // TCP: ASSURED (the handshake completed); UDP: a reply was seen; others: always.
    bool answered;
    bool outbound() const noexcept { return src_local || (row.forwarded && src_inside); }
    bool leaves() const noexcept { return !dst_local && !(row.forwarded && dst_inside); }
};

// Everything a detector may use during one tick.
struct Ctx {
    AlertBook& book;
    const StringPool& strings;
    const DetectConfig& config;
    std::uint64_t now_ns;
    std::uint64_t start_ns;  // the detectors' first tick: learning periods start here
    DetectorEnv env;
    std::string_view str(StrId id) const { return strings.get(id); }
};

// Keys are value-initialised structs compared and hashed as bytes (padding zeroed by `{}`).
template <typename K>
struct BytesEq {
    bool operator()(const K& a, const K& b) const noexcept {
        return std::memcmp(&a, &b, sizeof(K)) == 0;
    }
};
template <typename K>
struct BytesHash {
    std::size_t operator()(const K& k) const noexcept {
        return std::hash<std::string_view>{}(
            std::string_view(reinterpret_cast<const char*>(&k), sizeof(K)));
    }
};

// A count over a sliding window, approximated by two fixed buckets (the previous bucket's
// share that still lies in the window is counted pro rata): 16 bytes whatever the rate.
struct WindowCount {
    std::uint64_t bucket_ns = 0;  // start of the current bucket
    std::uint64_t cur = 0, prev = 0;
    void roll(std::uint64_t now_ns, std::uint64_t window_ns) {
        if (now_ns < bucket_ns + window_ns) return;
        prev = now_ns < bucket_ns + 2 * window_ns ? cur : 0;
        cur = 0;
        bucket_ns = now_ns - (now_ns - bucket_ns) % window_ns;
        if (bucket_ns == 0) bucket_ns = now_ns;
    }
    void add(std::uint64_t now_ns, std::uint64_t window_ns, std::uint64_t n) {
        if (bucket_ns == 0) bucket_ns = now_ns;
        roll(now_ns, window_ns);
        cur += n;
    }
    std::uint64_t estimate(std::uint64_t now_ns, std::uint64_t window_ns) const {
        const double into =
            window_ns ? static_cast<double>(now_ns - bucket_ns) / static_cast<double>(window_ns)
                      : 1.0;
        const double share = std::clamp(1.0 - into, 0.0, 1.0);
        return cur + static_cast<std::uint64_t>(static_cast<double>(prev) * share);
    }
};

// Drops the oldest eighth of `map` by last_ns(value) once it holds `cap` entries: amortised,
// so a flood of new keys costs O(log n) each, not a scan per insertion. Returns how many.
template <typename Map, typename F>
std::size_t evict_oldest(Map& map, std::size_t cap, F last_ns) {
    if (map.size() < cap) return 0;
    std::vector<std::uint64_t> times;
    times.reserve(map.size());
    for (const auto& kv : map) times.push_back(last_ns(kv.second));
    const std::size_t drop = std::max<std::size_t>(1, map.size() / 8);
    std::nth_element(times.begin(), times.begin() + static_cast<long>(drop - 1), times.end());
    const std::uint64_t cutoff = times[drop - 1];
    std::size_t dropped = 0;
    for (auto it = map.begin(); it != map.end() && dropped < drop;) {
        if (last_ns(it->second) <= cutoff) {
            it = map.erase(it);
            ++dropped;
        } else {
            ++it;
        }
    }
    return dropped;
}

// Eviction in insertion order with a second chance (CLOCK): O(1) amortised per insertion,
// where evict_oldest scans the whole map each time it fills. Measured at 10k new flows/s with
// 4096-entry maps (bench/RESULTS.md, "Detectors"): evict_oldest's walks over the map's nodes
// were most of the detectors' cost, each a cache miss. An entry touched since it was queued
// goes to the back once instead of out; entries the map lost otherwise (expired, ended) are
// skipped, and the queue is rebuilt when they outnumber the live ones.
template <typename K>
class EvictionQueue {
  public:
    // Before inserting `key` (absent from map): makes room when map holds `cap` entries.
    // Returns how many entries it evicted.
    template <typename Map, typename F>
    std::size_t make_room(Map& map, std::size_t cap, std::uint64_t now_ns, F last_ns) {
        return make_room(map, cap, now_ns, last_ns, [](const auto&) {});
    }
    // The same, calling on_erase(value) for each entry it evicts.
    template <typename Map, typename F, typename E>
    std::size_t make_room(Map& map, std::size_t cap, std::uint64_t now_ns, F last_ns, E on_erase) {
        std::size_t evicted = 0;
        if (order_.size() > 2 * map.size() + 64) rebuild(map, last_ns);
        // Each queued entry gets at most one second chance per round, so this ends.
        for (std::size_t budget = 2 * order_.size() + 1; map.size() >= cap && budget; --budget) {
            if (order_.empty()) rebuild(map, last_ns);
            if (order_.empty()) break;
            const auto [key, queued_ns] = order_.front();
            order_.pop_front();
            auto it = map.find(key);
            if (it == map.end()) continue;  // already gone
            if (last_ns(it->second) > queued_ns && queued_ns < now_ns) {
                order_.push_back({key, now_ns});
                continue;
            }
            on_erase(it->second);
            map.erase(it);
            ++evicted;
        }
        return evicted;
    }
    void added(const K& key, std::uint64_t now_ns) { order_.push_back({key, now_ns}); }
    std::size_t size() const noexcept { return order_.size(); }

  private:
    template <typename Map, typename F>
    void rebuild(const Map& map, F last_ns) {
        order_.clear();
        for (const auto& [k, v] : map) order_.push_back({k, last_ns(v)});
        std::sort(order_.begin(), order_.end(),
                  [](const auto& a, const auto& b) { return a.second < b.second; });
    }
    std::deque<std::pair<K, std::uint64_t>> order_;
};

// The exfiltration detector's per-flow baselines (orig bytes last seen), one slot per flow in
// an open-addressing table at most half full: one cache line a lookup where a node map costs
// two or three misses, at every outbound flow's every change. Full at `cap` flows, it evicts
// with a clock hand (an entry used since the hand last passed gets a second chance).
class FlowBaselines {
  public:
    // The bytes stored for `key` (0 when absent), replaced by `bytes`. `cap` may change
    // (a reload): the table is rebuilt at its next call. Adds the entries evicted.
    std::uint64_t exchange(ct::FlowKey key, std::uint64_t bytes, std::size_t cap,
                           std::uint64_t& evictions);
    void erase(ct::FlowKey key);
    std::size_t size() const noexcept { return size_; }

  private:
    struct Slot {
        ct::FlowKey key;
        std::uint64_t bytes;
    };
    enum : std::uint8_t { k_empty = 0, k_used = 1, k_referenced = 2 };
    std::size_t home(ct::FlowKey key) const noexcept {
        std::uint64_t h = key * 0x9e3779b97f4a7c15ull;
        return static_cast<std::size_t>(h >> 32) & mask_;
    }
    std::size_t find(ct::FlowKey key) const noexcept;  // slot index, or slots_.size()
    void remove_at(std::size_t i) noexcept;
    void evict_one(std::uint64_t& evictions) noexcept;
    void resize(std::size_t cap, std::uint64_t& evictions);

    std::vector<Slot> slots_;
    std::vector<std::uint8_t> state_;
    std::size_t size_ = 0, cap_ = 0, mask_ = 0, hand_ = 0;
};

std::string addr_text(const Addr& a, Family f);
std::string duration_text(std::uint64_t ns);
std::string bytes_text(std::uint64_t bytes);
// The process as alerts name it: "curl (pid 123)"; empty when unknown.
std::string process_text(const Ctx& c, const table::FlowRow& row);
// Fills the actor's process, user, container, netns and country fields from a row.
void fill_context(const Ctx& c, table::Alert& a, const table::FlowRow& row);
void add_sample(std::vector<std::string>& v, const std::string& s);
void add_sample(std::vector<std::uint16_t>& v, std::uint16_t p);

// The detectors, each fed the changed flows; evaluate() runs once a tick after all flows.
class ScanDetector {
  public:
    void on_flow(Ctx& c, const Facts& f, bool created);
    void evaluate(Ctx& c);
    void expire(Ctx& c);
    std::size_t tracked() const;
    std::uint64_t evictions = 0;

  private:
    struct Probe {
        std::uint64_t ns;
        ct::FlowKey key;
        Addr dst;
        std::uint16_t port;
        std::uint8_t proto;
        bool counted_scan = false, counted_sweep = false;
    };
    struct SrcKey {
        Addr src;
        Family family;
        std::uint16_t source;
    };
    struct Source {
        std::vector<Probe> probes;
        std::uint64_t last_ns = 0;
        bool touched = false;
    };
    struct Track {  // an open alert's distinct ports or hosts
        std::vector<bool> ports;
        std::unordered_set<Addr, BytesHash<Addr>, BytesEq<Addr>> hosts;  // at most 65536
    };
    void evaluate_source(Ctx& c, const SrcKey& key, Source& s);
    std::unordered_map<SrcKey, Source, BytesHash<SrcKey>, BytesEq<SrcKey>> sources_;
    EvictionQueue<SrcKey> sources_order_;
    std::vector<SrcKey> touched_;
    std::unordered_map<std::uint64_t, Track> tracks_;
    // 64k probes of ~48 bytes: about 3 MB at most, whatever the number of scanners.
    static constexpr std::size_t k_max_probes = 65536;
    std::size_t probes_ = 0;
};

class FloodDetector {
  public:
    void on_flow(Ctx& c, const Facts& f, bool created);
    void evaluate(Ctx& c);
    void expire(Ctx& c);
    std::size_t tracked() const;
    std::uint64_t evictions = 0;

  private:
    struct PortKey {
        std::uint8_t proto;
        std::uint16_t port;
        std::uint16_t source;
    };
    struct Src {
        Addr addr;
        Family family;
        std::uint64_t ns;
        ct::FlowKey key;
        bool counted;
    };
    struct Port {
        std::vector<Src> srcs;
        std::uint64_t last_ns = 0;
        bool touched = false;
        Addr dst;
        Family family = Family::ipv4;
    };
    std::unordered_map<PortKey, Port, BytesHash<PortKey>, BytesEq<PortKey>> ports_;
    EvictionQueue<PortKey> ports_order_;
    std::vector<PortKey> touched_;
    // Open alert -> its distinct sources (at most 65536): a set, as a flood's sources are
    // what it has many of (a vector's linear search made each tick quadratic).
    std::unordered_map<std::uint64_t, std::unordered_set<Addr, BytesHash<Addr>, BytesEq<Addr>>>
        distinct_;
};

class FanoutDetector {
  public:
    void on_flow(Ctx& c, const Facts& f, bool created);
    void expire(Ctx& c);
    std::size_t tracked() const { return keys_.size() + sources_.size(); }
    std::uint64_t evictions = 0;

  private:
    struct Key {
        Addr src, dst;
        Family family;
        std::uint8_t proto;
        std::uint16_t dport;
        std::uint16_t source;
        std::uint32_t pid;
    };
    struct SrcKey {
        Addr src;
        Family family;
        std::uint16_t source;
        std::uint32_t pid;
    };
    struct Entry {
        WindowCount count;
        std::uint64_t last_ns = 0;
        std::uint64_t since_ns = 0;  // tracked since (a jump needs a window before it)
        std::uint64_t alert = 0;     // the alert it raised (strings are built only then)
    };
    // New flows per key over the last one or two windows, approximate from above (a
    // count-min sketch: 4 rows of 4096 counters, 64 KB whatever the traffic). A key enters
    // keys_ only once the sketch counts a quarter of fanout.flows for it: a busy host's
    // thousands of one-flow destinations never cost a map node, an insertion and an eviction.
    struct Sketch {
        static constexpr std::size_t k_rows = 4, k_width = 4096;
        std::vector<std::uint16_t> cur, prev;
        std::uint64_t start_ns = 0;
        std::uint64_t adds = 0;  // this window's: adds / k_width is what a counter holds of others
        // Counts one flow of the key hashed to h; returns {this window's count less the mean
        // load of a counter (count-mean-min: the others' share), both windows' count}.
        std::pair<std::uint32_t, std::uint32_t> add(std::uint64_t h, std::uint64_t now_ns,
                                                    std::uint64_t window_ns);
    };
    Sketch sketch_;
    std::unordered_map<Key, Entry, BytesHash<Key>, BytesEq<Key>> keys_;
    std::unordered_map<SrcKey, Entry, BytesHash<SrcKey>, BytesEq<SrcKey>> sources_;
    EvictionQueue<Key> keys_order_;
    EvictionQueue<SrcKey> sources_order_;
};

class ExfilDetector {
  public:
    explicit ExfilDetector(const DetectConfig& config) { set_allow(config); }
    // exfil.allow parsed into nets, countries and processes (again on a reload).
    void set_allow(const DetectConfig& config);
    void on_flow(Ctx& c, const Facts& f);
    void on_ended(ct::FlowKey key) { sent_.erase(key); }
    void expire(Ctx& c);
    std::size_t tracked() const { return sent_.size() + clients_.size(); }
    std::uint64_t evictions = 0;

  private:
    bool allowed(const Ctx& c, const table::FlowRow& row) const;
    struct Key {
        Addr src;
        Family family;
        std::uint16_t source;
        std::uint32_t pid;
    };
    static constexpr int k_buckets = 10;
    struct Client {
        std::uint64_t bucket_bytes[k_buckets] = {};
        std::uint64_t bucket_start[k_buckets] = {};
        std::uint64_t last_ns = 0;
        std::uint64_t alert = 0;  // the alert it raised (strings are built only then)
        std::uint64_t sum(std::uint64_t now_ns, std::uint64_t window_ns) const;
        void add(std::uint64_t now_ns, std::uint64_t window_ns, std::uint64_t bytes);
    };
    std::vector<Network> allow_nets_;
    std::vector<std::string> allow_countries_, allow_procs_;
    FlowBaselines sent_;  // orig bytes of outbound flows last seen
    std::unordered_map<Key, Client, BytesHash<Key>, BytesEq<Key>> clients_;
    EvictionQueue<Key> clients_order_;
};

class NoveltyDetector {  // countries and services
  public:
    void on_flow(Ctx& c, const Facts& f);
    void retry(Ctx& c, const std::function<const table::FlowRow*(ct::FlowKey)>& find,
               const std::function<Facts(const table::FlowRow&, ct::FlowKey)>& facts);
    std::size_t tracked() const {
        return countries_.size() + by_process_.size() + services_.size() + waiting_.size();
    }
    std::uint64_t evictions = 0;

  private:
    // false: the flow lacks what it needs yet (country, owner); ask again next tick.
    bool country(Ctx& c, const Facts& f, bool last_try);
    bool service(Ctx& c, const Facts& f, bool last_try);
    struct Wait {
        ct::FlowKey key;
        int ticks;
        bool country, service;
    };
    std::unordered_map<StrId, std::uint64_t> countries_;           // country -> first seen
    std::unordered_map<std::uint64_t, std::uint64_t> by_process_;  // comm << 32 | country
    struct Service {
        std::uint64_t alert = 0;  // the alert raised for it; 0: known from learning
        std::uint64_t last_ns = 0;
    };
    std::unordered_map<std::uint32_t, Service> services_;  // proto << 16 | port
    std::vector<Wait> waiting_;
};

class AgeDetector {  // long-lived flows, well-known programs on odd ports
  public:
    void on_flow(Ctx& c, const Facts& f);
    void on_ended(ct::FlowKey key) {
        long_seen_.erase(key);
        odd_seen_.erase(key);
    }
    std::size_t tracked() const { return long_seen_.size() + odd_seen_.size(); }
    std::uint64_t evictions = 0;

  private:
    std::unordered_map<ct::FlowKey, std::uint64_t> long_seen_, odd_seen_;
};

}  // namespace flowtop::detect
