#pragma once
// The batch loop: waits for each frame the writer publishes, filters and orders its rows, and
// hands them to a writer, until the count is reached or an exit signal arrives.
#include <cstdio>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

// Returns the process exit status (0 when every frame was written).
int run_batch(const table::SnapshotHub& hub, const Options& options, std::FILE* out);

}  // namespace flowtop::ui
