#pragma once
// The health of one conntrack table: entries in use against the limit and the kernel's per-CPU
// event counters (what `conntrack -S` prints), summed over CPUs. On a busy gateway the table
// is what breaks first ("nf_conntrack: table full, dropping packet"): these numbers show it
// coming. Parsing is apart from receiving so tests feed built messages in.
#include <cstddef>
#include <cstdint>
#include <span>

namespace flowtop::ct {

// The per-CPU counters of IPCTNL_MSG_CT_GET_STATS_CPU, summed over every CPU. Monotonic while
// the namespace lives (the kernel never resets them).
struct KernelCounters {
    std::uint64_t found = 0;           // lookups that found an entry
    std::uint64_t invalid = 0;         // packets conntrack could not track
    std::uint64_t insert_failed = 0;   // entries that lost an insertion race
    std::uint64_t drop = 0;            // packets dropped: the table was full
    std::uint64_t early_drop = 0;      // entries evicted to make room for new ones
    std::uint64_t error = 0;           // ICMP errors for which no entry was found
    std::uint64_t search_restart = 0;  // lookups restarted by a concurrent resize
    friend bool operator==(const KernelCounters&, const KernelCounters&) = default;
};

struct TableStats {
    std::uint64_t count = 0;  // entries in use in this namespace (nf_conntrack_count)
    std::uint64_t max = 0;  // nf_conntrack_max: the kernel checks this namespace's count against it
    std::uint64_t buckets = 0;  // nf_conntrack_buckets (hash size; global to the host)
    KernelCounters counters;
    unsigned cpus = 0;  // per-CPU answers summed
    friend bool operator==(const TableStats&, const TableStats&) = default;
};

// The counters' names as `conntrack -S` and flowtop's JSON keys write them, in struct order.
inline constexpr const char* k_kernel_counter_names[] = {
    "found", "invalid", "insert_failed", "drop", "early_drop", "error", "search_restart"};
inline constexpr std::size_t k_kernel_counter_count = 7;
// The counter at index i of k_kernel_counter_names.
std::uint64_t& counter_at(KernelCounters& c, std::size_t i) noexcept;
std::uint64_t counter_at(const KernelCounters& c, std::size_t i) noexcept;

struct StatsParseResult {
    bool done = false;       // NLMSG_DONE (the end of the per-CPU dump) or the ACK seen
    int netlink_error = 0;   // errno of an NLMSG_ERROR, 0 when none
    std::size_t errors = 0;  // malformed messages skipped
};

// Adds the answers in `buf` to `out`: a GET_STATS answer sets count and max (when the kernel
// sends CTA_STATS_GLOBAL_*), each GET_STATS_CPU answer (one per CPU) adds to the counters.
// Never throws; bad messages are counted and skipped.
StatsParseResult parse_table_stats(std::span<const std::byte> buf, TableStats& out) noexcept;

}  // namespace flowtop::ct
