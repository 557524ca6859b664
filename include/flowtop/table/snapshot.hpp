#pragma once
// Immutable frames of the flow table. The writer publishes one per tick; any number of readers
// take the latest without ever blocking the writer (an atomic shared_ptr swap), and a frame
// stays valid for as long as a reader holds it.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "flowtop/table/flow_row.hpp"
#include "flowtop/table/flow_rows.hpp"
#include "flowtop/util/string_pool.hpp"

namespace flowtop::table {

struct FrameStats {
    std::uint64_t seq = 0;        // 1 for the first frame
    std::uint64_t time_ns = 0;    // CLOCK_REALTIME of the frame
    double interval_s = 0;        // time since the previous frame
    std::uint64_t events = 0;     // conntrack events received since start
    std::uint64_t lost_events = 0;  // times the kernel reported lost events (ENOBUFS)
    std::uint64_t resyncs = 0;    // full dumps made to heal a loss
    std::uint64_t dumps = 0;      // full dumps in all
    std::uint64_t parse_errors = 0;
    double last_dump_ms = 0;
    double sweep_interval_s = 0;  // how often every flow's counters are re-read (adapts to size)
    std::uint64_t refreshed = 0;  // busy flows re-read this tick between full sweeps
    bool acct_on = false;         // nf_conntrack_acct while running
    bool timestamp_on = false;    // nf_conntrack_timestamp while running
    bool empty_at_start = false;  // the first dump found no flows (conntrack may be inactive)
    std::uint32_t sources = 0;    // conntrack tables watched (network namespaces)
};

struct Snapshot {
    FrameStats stats;
    FlowRows rows;  // vector-like; shares unchanged chunks with other frames
    std::shared_ptr<const StringPool> strings;

    std::string_view str(StrId id) const noexcept { return strings ? strings->get(id) : ""; }
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

class SnapshotHub {
public:
    void publish(SnapshotPtr snapshot);
    SnapshotPtr latest() const { return latest_.load(std::memory_order_acquire); }
    // Waits until a frame newer than `seq` exists, or the timeout passes, or close() is called.
    SnapshotPtr wait_newer(std::uint64_t seq, std::chrono::milliseconds timeout) const;
    // Wakes every waiter for good (the writer stopped or failed).
    void close();
    bool closed() const noexcept { return closed_.load(); }

private:
    std::atomic<SnapshotPtr> latest_;
    std::atomic<bool> closed_{false};
    mutable std::mutex mutex_;  // only for waiting readers; publish holds it for a notify
    mutable std::condition_variable cv_;
};

}  // namespace flowtop::table
