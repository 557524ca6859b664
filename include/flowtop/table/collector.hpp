#pragma once
// The writer thread: reads conntrack events and periodic dumps into the FlowTable and publishes
// a Snapshot every tick. It alone touches the table; everything else reads snapshots.
#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <vector>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/ct/parser.hpp"
#include "flowtop/table/flow_table.hpp"
#include "flowtop/table/snapshot.hpp"

namespace flowtop::table {

// Runs on the writer thread once per tick, before the frame is published: enrichment hands its
// results to the table here (never blocking: it only drains queues and posts requests).
class TickHook {
public:
    virtual ~TickHook() = default;
    virtual void on_tick(FlowTable& table, StringPool& strings, std::uint64_t now_ns) = 0;
};

struct CollectorConfig {
    std::chrono::milliseconds interval{1000};
    bool acct_on = false;
    bool timestamp_on = false;
    // Event processing yields to the tick after this long, so frames stay on time under floods.
    std::chrono::milliseconds event_budget{50};
    // A full dump of 100k flows costs ~0.3-0.5 s of CPU, half of it in the kernel: once per
    // tick would eat half a core. Full sweeps get this share of one core; between them only
    // busy flows (events, or traffic at the last sample) are re-read, in batched GETs.
    double sweep_cpu_share = 0.04;
    std::chrono::milliseconds max_sweep_gap{10000};
    std::size_t max_refresh = 4096;  // more busy flows than this: a full sweep is cheaper
    std::chrono::milliseconds fixed_sweep_gap{0};  // non-zero: sweep this often, not adaptively
};

class Collector {
public:
    Collector(ct::ConntrackIo& io, SnapshotHub& hub, CollectorConfig config);
    ~Collector();
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    void add_hook(TickHook* hook) { hooks_.push_back(hook); }

    // The writer thread's body: returns when stop is requested. Throws only for setup errors
    // of the first dump; later failures are counted and retried.
    void run(std::stop_token stop);

    // Single steps, for tests and benchmarks that drive the writer by hand.
    void full_dump(bool resync);
    std::size_t drain_events();
    void publish();
    // One tick's refresh: a full sweep when due, else a batched re-read of the busy flows.
    void refresh();
    // Re-reads the busy flows; false when it could not (the caller sweeps instead).
    bool refresh_busy();

    const FlowTable& table() const noexcept { return table_; }
    const FrameStats& stats() const noexcept { return stats_; }

private:
    void handle_events(std::span<const std::byte> bytes);

    ct::ConntrackIo& io_;
    SnapshotHub& hub_;
    CollectorConfig config_;
    ct::Parser parser_;
    FlowTable table_;
    std::shared_ptr<StringPool> strings_;
    FrameStats stats_;
    std::vector<std::byte> buffer_;
    std::vector<TickHook*> hooks_;
    std::chrono::steady_clock::time_point last_tick_{};
    bool need_resync_ = false;
    unsigned ticks_since_sweep_ = 0;
    unsigned sweep_every_ = 1;  // ticks between full sweeps
    std::uint32_t request_seq_ = 1u << 31;  // distinct from the dump's sequence numbers
    std::vector<ct::FlowRecord> busy_;
};

// CLOCK_REALTIME in nanoseconds.
std::uint64_t realtime_ns() noexcept;

}  // namespace flowtop::table
