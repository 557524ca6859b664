#pragma once
// Deleting flows' conntrack entries: the live view's key (K / F9) and --delete-matching share
// these. The deleting itself is a function the caller wires (ct::FlowDeleter in main), so
// the views never open a socket and tests pass a fake beside the real kernel.
#include <cstdio>
#include <functional>
#include <string>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

// Deletes one entry; returns 0 or an errno (ENOENT: no such entry any more).
using DeleteFlow = std::function<int(const ct::FlowRecord&)>;

// One flow in a line: "tcp 192.0.2.1:40000 -> 203.0.113.9:443" plus, with NAT, what it became
// ("as 198.51.100.254:61000 -> 203.0.113.9:443"), then the zone when not 0.
std::string flow_summary(const ct::FlowRecord& ct);

// What came of a deletion, for a person: "deleted", "gone already" or "failed: <reason>".
std::string delete_outcome(int err);

// Why the selected row may not be deleted now, or "" when it may: a row that has ended, or,
// while paused, one that the latest frame no longer holds as it was shown (stale).
std::string delete_refusal(const table::FlowRow& row, bool paused, const table::Snapshot* latest);

// --delete-matching: waits for a settled frame (the second: processes and names are in),
// lists the flows the expression (and --filter, -4 -6 -T ...) match, and with --yes deletes
// each, saying what came of it. Table output: a line a flow; JSON: the flow's object with a
// "delete" member ("dry_run", "deleted", "gone", "failed"). A summary goes to stderr.
// Returns the exit status: 0, or 1 when a deletion failed (an entry gone already is none).
int run_delete_matching(const table::SnapshotHub& hub, const Options& options,
                        const DeleteFlow& remove, std::FILE* out);

}  // namespace flowtop::ui
