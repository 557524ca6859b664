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

#include "flowtop/ct/table_stats.hpp"
#include "flowtop/table/alert.hpp"
#include "flowtop/table/flow_row.hpp"
#include "flowtop/table/flow_rows.hpp"
#include "flowtop/util/string_pool.hpp"

namespace flowtop::table {

struct FrameStats {
    std::uint64_t seq = 0;          // 1 for the first frame
    std::uint64_t time_ns = 0;      // CLOCK_REALTIME of the frame
    double interval_s = 0;          // time since the previous frame
    std::uint64_t events = 0;       // conntrack events received since start
    std::uint64_t lost_events = 0;  // times the kernel reported lost events (ENOBUFS)
    std::uint64_t resyncs = 0;      // full dumps made to heal a loss
    std::uint64_t dumps = 0;        // full dumps in all
    double events_per_s = 0;        // over the last interval
    double sweep_interval_s = 0;    // how often every flow's counters are re-read (adapts to size)
    bool acct_on = false;           // nf_conntrack_acct while running
    bool timestamp_on = false;      // nf_conntrack_timestamp while running
    bool empty_at_start = false;    // the first dump found no flows (conntrack may be inactive)
    std::uint32_t sources = 0;      // conntrack tables watched (network namespaces)
    // The whole table, before any reader's filter; kept by the writer as rows change.
    std::uint64_t flows_by_proto[4] = {};  // tcp, udp, icmp (both versions), other
    // Flows a flowtable has taken over (status OFFLOAD/HW_OFFLOAD): their packets bypass
    // conntrack, so their counters, and the rates from them, may be stale.
    std::uint64_t offloaded_flows = 0;
    std::uint64_t orig_bytes_total = 0;  // since start, flows that ended included
    std::uint64_t reply_bytes_total = 0;
    double orig_rate[4] = {};  // bytes/s summed over flows: last tick, 2 s, 10 s, 40 s windows
    double reply_rate[4] = {};
    double orig_rate_peak = 0;  // the highest last-tick total since start
    double reply_rate_peak = 0;
    // The conntrack tables' health (ct/table_stats.hpp), read once a tick and summed over the
    // watched namespaces; ct_known is false when no source could be asked.
    bool ct_known = false;
    std::uint64_t ct_count = 0;    // entries in use
    std::uint64_t ct_max = 0;      // nf_conntrack_max: each namespace's count is checked against it
    std::uint64_t ct_buckets = 0;  // nf_conntrack_buckets
    double ct_fullest = 0;         // the fullest namespace's count / max (0 to 1)
    ct::KernelCounters ct_counters;                           // totals, summed over CPUs
    double ct_counter_rate[ct::k_kernel_counter_count] = {};  // per second, last interval
    bool ct_dropping = false;  // drop, early_drop or insert_failed rose since the last frame
};

// One watched namespace's table use (the Table view's per-namespace rows).
struct NetnsTableUse {
    StrId label = k_no_string;  // no label: the one watched namespace
    std::uint64_t count = 0;
    std::uint64_t max = 0;
    ct::KernelCounters counters;  // this namespace's totals (monotonic while it lives)
};

struct Snapshot {
    FrameStats stats;
    FlowRows rows;  // vector-like; shares unchanged chunks with other frames
    std::shared_ptr<const StringPool> strings;
    // The detectors' alerts as of this frame (null when detection is off).
    std::shared_ptr<const AlertLog> alerts;
    // Per watched namespace, as of this frame (empty when the table stats are unknown).
    std::vector<NetnsTableUse> table_use;

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
