#pragma once
// The interactive top view: an ncurses terminal, the key loop, and the wiring of the view
// model to the writer's frames.
#include <functional>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/flow_delete.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

// What the view may ask of the parts behind it.
struct TopHooks {
    // `n`: start (true) or stop (false) new reverse DNS lookups; absent without a resolver.
    std::function<void(bool)> set_dns;
    // K / F9: deletes the selected flow's conntrack entry; absent (--all-netns, or the socket
    // could not be opened) the key says it cannot.
    DeleteFlow delete_flow;
};

// Runs until q, an exit signal, or -c frames. Returns the exit status.
int run_top(const table::SnapshotHub& hub, const Options& options, const TopHooks& hooks = {});

}  // namespace flowtop::ui
