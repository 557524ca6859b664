#pragma once
// Conntrack table pressure as users read it: "ct 1234/262144" against the limit, a warning
// when the table nears full or the kernel drops, and the top consumers of entries (which
// client, state, protocol, zone, namespace fills the table). The live view's Table tab, batch
// --group table and the JSON frame keys all come from here, so they agree.
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

// The header's warning threshold: the fullest namespace's share of nf_conntrack_max.
inline constexpr double k_ct_full_warning = 0.9;

// "ct 1234/262144", or "ct ?" when the kernel's stats are unknown.
std::string ct_use_text(const table::FrameStats& s);
// "" when all is well; else "CT 93% FULL" and/or "CT DROPS" (drop, early_drop or
// insert_failed rose since the last frame).
std::string ct_warning(const table::FrameStats& s);
// The frame's JSON members, each starting with a comma: ct_count, ct_max, ct_buckets,
// ct_stats {found,...} (totals), ct_stats_rate {found,...} (per second); null when unknown.
std::string ct_json_members(const table::FrameStats& s);

// The state a table entry counts under: the TCP state ("TIME_WAIT"), else "UNREPLIED" (no
// SEEN_REPLY status bit: nothing came back, what a scan or a flood leaves), "ASSURED" or
// "REPLIED".
std::string entry_state(const table::FlowRow& row);

struct Consumer {
    const char* by = "";  // source, state, proto, zone, netns
    std::string key;
    std::string filter;  // the filter expression that shows these flows ("" when none fits)
    std::uint64_t entries = 0;
};

// The top `top` consumers of each kind, busiest first, in the order source, state, proto,
// zone, netns (the last from the kernel's own counts, with several namespaces). Counts rows
// still in the kernel's table (not gone ones). Source is the original source: for a flow from
// the LAN the client, whatever NAT does after.
std::vector<Consumer> table_consumers(const table::Snapshot& snap,
                                      std::span<const table::FlowRow* const> rows,
                                      std::size_t top = 10);

// Batch --group table: one frame of the table's use and consumers.
void write_table_frame(OutputFormat format, std::FILE* out, const table::Snapshot& snap,
                       const std::vector<Consumer>& rows, bool csv_header);

}  // namespace flowtop::ui
