#pragma once
// The writer thread: reads conntrack events and periodic dumps into the FlowTable and publishes
// a Snapshot every tick. It alone touches the table; everything else reads snapshots.
#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/ct/parser.hpp"
#include "flowtop/table/flow_table.hpp"
#include "flowtop/table/snapshot.hpp"
#include "flowtop/table/tick.hpp"

namespace flowtop::table {

struct CollectorConfig {
    std::chrono::milliseconds interval{1000};
    // Accounting and timestamps in every watched namespace (the header shows these).
    bool acct_on = false;
    bool timestamp_on = false;
    // Event processing yields to the tick after this long, so frames stay on time under floods.
    std::chrono::milliseconds event_budget{50};
    // A full dump of 100k flows costs ~0.3-0.5 s of CPU, half of it in the kernel: once per
    // tick would eat half a core. Full sweeps get this share of one core; between them only
    // busy flows (events, or traffic at the last sample) are re-read, in batched GETs.
    double sweep_cpu_share = 0.04;
    // The longest gap the share may stretch to. 10 s held the sweep at a dump's CPU / 10 s
    // from ~100k flows up (9% of a core at 240k flows, 0.1 of a sweep every second, before
    // anything else): 30 s lets the share hold up to ~300k flows on this class of machine.
    std::chrono::milliseconds max_sweep_gap{30000};
    // More busy flows than this and than a quarter of the table: a full sweep is cheaper.
    std::size_t max_refresh = 4096;
    std::chrono::milliseconds fixed_sweep_gap{0};  // non-zero: sweep this often, not adaptively
};

class Collector;

// Adds and removes sources as namespaces come and go; runs on the writer thread at the start
// of every tick (and once before the first dump).
class SourceWatcher {
  public:
    virtual ~SourceWatcher() = default;
    virtual void update_sources(Collector& collector) = 0;
};

class Collector {
  public:
    // Watches one conntrack table (source 0, no namespace label).
    Collector(ct::ConntrackIo& io, SnapshotHub& hub, CollectorConfig config);
    // Watches the sources a SourceWatcher adds.
    Collector(SnapshotHub& hub, CollectorConfig config);
    ~Collector();
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    // Hooks run on the writer thread every tick, in the order added (see tick.hpp).
    void add_hook(TickHook* hook) { hooks_.add(hook); }
    void remove_hook(TickHook* hook) { hooks_.remove(hook); }
    void set_source_watcher(SourceWatcher* watcher) { watcher_ = watcher; }
    // Each frame carries this source's alert log (the detectors, themselves a hook).
    void set_alert_source(const AlertSource* source) { alert_source_ = source; }
    // Whether accounting and timestamps are on in every watched namespace (they change as
    // namespaces come and go).
    void set_kernel_settings(bool acct_on, bool timestamp_on) noexcept {
        config_.acct_on = stats_.acct_on = acct_on;
        config_.timestamp_on = stats_.timestamp_on = timestamp_on;
    }

    // Writer thread only (or before run). A source is one namespace's conntrack table; its
    // rows carry `label` in FlowRow::netns. Once the collector runs, a new source is dumped at
    // once. Returns the source index that its records carry.
    std::uint16_t add_source(ct::ConntrackIo& io, const std::string& label);
    // The source's flows are reported gone in the next frame; its io is not touched again.
    void remove_source(std::uint16_t source);
    std::size_t source_count() const noexcept;

    // The writer thread's body: returns when stop is requested. Throws only for setup errors
    // of the first dump; later failures are counted and retried.
    void run(std::stop_token stop);

    // Single steps, for tests and benchmarks that drive the writer by hand.
    void full_dump(bool resync);  // every source
    std::size_t drain_events();
    void publish();
    // One tick's refresh: a full sweep when due, else a batched re-read of the busy flows.
    void refresh();
    // Re-reads the busy flows of every source not swept this tick; false when one could not
    // (that source is swept instead).
    bool refresh_busy();

    const FlowTable& table() const noexcept { return table_; }
    const FrameStats& stats() const noexcept { return stats_; }

  private:
    struct Source {
        ct::ConntrackIo* io = nullptr;  // nullptr: a removed source's free slot
        bool need_resync = false;
        bool sweep_now = false;  // this tick's refresh sweeps it
        unsigned ticks_since_sweep = 0;
        unsigned sweep_every = 1;  // ticks between full sweeps
        bool have_table_stats = false;
        ct::TableStats table_stats{};  // the last reading
    };

    void dump_source(std::uint16_t index, bool resync);
    std::size_t drain_source(Source& source);
    bool refresh_busy_of(std::uint16_t index, std::span<const ct::FlowRecord> busy);
    // Parses netlink messages from `source` into the table, each record tagged with it.
    ct::ParseResult apply_messages(std::span<const std::byte> bytes, std::uint16_t source);
    void handle_events(std::span<const std::byte> bytes, std::uint16_t source);
    bool any_resync_needed() const noexcept;
    std::size_t refresh_limit() const noexcept;
    void update_sweep_interval() noexcept;
    // Reads every source's table stats into stats_ and `use` (once a tick).
    void read_table_stats(double dt, std::vector<NetnsTableUse>& use);

    SnapshotHub& hub_;
    CollectorConfig config_;
    ct::Parser parser_;
    FlowTable table_;
    std::shared_ptr<StringPool> strings_;
    FrameStats stats_;
    std::vector<std::byte> buffer_;
    TickHooks hooks_;
    std::uint64_t last_events_ = 0;
    SourceWatcher* watcher_ = nullptr;
    const AlertSource* alert_source_ = nullptr;
    std::vector<Source> sources_;
    bool running_ = false;
    std::chrono::steady_clock::time_point last_tick_{};
    std::uint32_t request_seq_ = 1u << 31;  // distinct from the dump's sequence numbers
    std::vector<ct::FlowRecord> busy_;
};

// CLOCK_REALTIME in nanoseconds.
std::uint64_t realtime_ns() noexcept;

}  // namespace flowtop::table
