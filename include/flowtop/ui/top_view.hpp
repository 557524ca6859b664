#pragma once
// The interactive top view: an ncurses terminal, the key loop, and the wiring of the view
// model to the writer's frames.
#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

// Runs until q, an exit signal, or -c frames. Returns the exit status.
int run_top(const table::SnapshotHub& hub, const Options& options);

}  // namespace flowtop::ui
