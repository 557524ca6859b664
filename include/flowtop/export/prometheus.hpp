#pragma once
// Prometheus metrics on /metrics (text exposition format 0.0.4), served by a tiny HTTP server
// on its own thread from the latest frame, so a scrape never waits for or blocks the writer.
// Labels are bounded by design: direction, family, protocol, state, destination country,
// service, process name and namespace label, never a flow or an address; each label keeps at
// most max_label_values values and the rest fold into "other" (counted).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/table/tick.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop::exporters {

struct PrometheusConfig {
    std::string listen = "127.0.0.1:9149";  // [ADDR]:PORT; no address: 127.0.0.1
    bool netns_label = false;               // --all-netns: a netns label on flow series
    std::size_t max_label_values = 200;     // per label; the rest become "other"
    std::size_t max_series = 2000;          // label sets of the flow byte/packet series
    std::size_t max_request = 8192;         // bytes of request head read at most
    std::chrono::milliseconds io_timeout{2000};
};

// Label values of one flow series; StrIds resolve through the frame's string pool.
struct SeriesKey {
    std::uint8_t family = 0;  // 4 or 6
    std::uint8_t proto = 0;
    StrId dst_country = k_no_string;
    StrId service = k_no_string;
    StrId comm = k_no_string;
    StrId netns = k_no_string;
    friend bool operator==(const SeriesKey&, const SeriesKey&) = default;
};
constexpr StrId k_other_label = 0xffffffffu;  // a value folded into "other"

struct SeriesTotals {
    ct::Counters orig;
    ct::Counters reply;
};

class PrometheusExporter final : public table::TickHook {
  public:
    // Binds the listening socket (throws Error naming the address when it cannot).
    PrometheusExporter(const table::SnapshotHub& hub, PrometheusConfig config);
    ~PrometheusExporter() override;

    // More exposition text (other exporters' counters), appended to every scrape; before start.
    void add_metrics(std::function<void(std::string&)> append) {
        extras_.push_back(std::move(append));
    }
    void start();
    std::uint16_t port() const noexcept { return port_; }

    // Writer thread: per-label byte and packet totals from the flows that changed.
    void on_tick(table::TickContext& tick) override;
    // The exposition text of the latest frame (what GET /metrics answers).
    std::string render() const;

  private:
    struct KeyHash {
        std::size_t operator()(const SeriesKey& k) const noexcept;
    };
    struct Seen {
        ct::Counters orig;
        ct::Counters reply;
    };
    struct Published {
        std::vector<SeriesKey> keys;
        std::vector<SeriesTotals> totals;
        std::uint64_t folded[5] = {};  // dst_country, service, comm, netns, whole label sets
    };
    std::uint32_t series_of(const table::FlowRow& row);
    StrId capped(int label, StrId value);
    void serve(std::stop_token stop);
    void answer(int fd) const;

    const table::SnapshotHub& hub_;
    PrometheusConfig config_;
    UniqueFd listen_;
    std::uint16_t port_ = 0;
    std::vector<std::function<void(std::string&)>> extras_;

    // Writer side.
    std::unordered_map<ct::FlowKey, Seen> seen_;
    std::vector<ct::FlowKey> gone_;
    std::unordered_map<SeriesKey, std::uint32_t, KeyHash> index_;
    Published mine_;
    std::unordered_set<StrId> values_[4];
    std::uint64_t last_gc_ns_ = 0;
    std::atomic<std::shared_ptr<const Published>> published_;

    std::jthread thread_;
};

// Prometheus label value escaping (backslash, quote, newline).
std::string prometheus_escape(std::string_view s);

}  // namespace flowtop::exporters
