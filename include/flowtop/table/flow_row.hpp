#pragma once
// One flow as readers see it: plain values and string ids, copyable with memcpy.
#include <cstdint>
#include <type_traits>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/util/string_pool.hpp"

namespace flowtop::table {

// Rate windows kept per flow besides the last tick, like iftop's 2 s / 10 s / 40 s columns.
constexpr int k_rate_windows = 3;
constexpr double k_rate_window_s[k_rate_windows] = {2.0, 10.0, 40.0};

// What tick hooks (enrichment, attribution) fill in; k_no_string / 0 while unknown or pending.
// A hook writes only these fields (table::TickContext::enrich hands it this part of the row).
struct FlowEnrichment {
    StrId src_name = k_no_string;
    StrId dst_name = k_no_string;
    StrId service = k_no_string;
    StrId src_country = k_no_string;
    StrId dst_country = k_no_string;
    StrId dst_country_name = k_no_string;  // English, from the mmdb that gave the code
    StrId dst_city = k_no_string;
    StrId dst_org = k_no_string;
    std::uint32_t dst_asn = 0;
    // The local process owning the flow's socket (either end on this host); pid 0 = none known.
    std::uint32_t pid = 0;
    std::uint32_t uid = 0;
    StrId comm = k_no_string;
    StrId cmdline = k_no_string;
    StrId user = k_no_string;
    StrId container = k_no_string;  // container name/id or systemd unit
    bool forwarded = false;         // no local socket: the host only routes this flow
    // The attributor has decided `forwarded` (an end here, or none); until then JSON says null.
    bool forwarded_known = false;
    StrId netns = k_no_string;  // namespace label when watching several
    // The latest alert this flow is evidence of (table::Alert::id, low 32 bits); 0 for none.
    std::uint32_t alert = 0;

    friend bool operator==(const FlowEnrichment&, const FlowEnrichment&) = default;
};

// The kernel's values and what the writer derives from them, plus the enrichment above.
struct FlowRow : FlowEnrichment {
    ct::FlowRecord ct;                // the latest values the kernel told us
    std::uint64_t first_seen_ns = 0;  // CLOCK_REALTIME, when flowtop first saw the flow
    std::uint64_t closed_ns = 0;      // CLOCK_REALTIME, when it ended; 0 while open
    float orig_rate = 0;              // bytes/s over the last tick, original direction
    float reply_rate = 0;
    float orig_rate_avg[k_rate_windows] = {};  // exponentially weighted over the windows above
    float reply_rate_avg[k_rate_windows] = {};
    bool rate_known = false;  // false until two samples of counters exist
    bool closed = false;      // the flow has ended: TCP TIME_WAIT/CLOSE, destroyed or expired
    bool gone = false;        // no longer in the kernel's table: shown once more, then dropped

    friend bool operator==(const FlowRow&, const FlowRow&) = default;

    bool has_counters() const noexcept { return ct.has_counters; }
    std::uint64_t start_ns() const noexcept { return ct.start_ns ? ct.start_ns : first_seen_ns; }
    double age_s(std::uint64_t now_ns) const noexcept {
        std::uint64_t end = closed_ns ? closed_ns : now_ns;
        std::uint64_t start = start_ns();
        return end > start ? static_cast<double>(end - start) / 1e9 : 0.0;
    }
};

static_assert(std::is_trivially_copyable_v<FlowRow>);

}  // namespace flowtop::table
