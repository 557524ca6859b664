#include "flowtop/export/ended_flows.hpp"

namespace flowtop::exporters {

void EndedFlows::collect(table::TickContext& tick, std::vector<table::FlowRow>& out) {
    const auto now = tick.now_ns();
    for (const auto key : tick.changes().ended) {
        const table::FlowRow* row = tick.find(key);
        if (!row) continue;
        if (row->gone) {
            pending_.erase(key);
            out.push_back(*row);
            continue;
        }
        if (pending_.insert_or_assign(key, Pending{*row, now + grace_ns_}).second)
            due_.emplace_back(now + grace_ns_, key);
    }
    // A held flow whose counters were re-read or whose DESTROY came: keep the newer row, and
    // report it once it has left the kernel's table.
    if (!pending_.empty()) {
        for (const auto key : tick.changes().updated) {
            auto it = pending_.find(key);
            if (it == pending_.end()) continue;
            const table::FlowRow* row = tick.find(key);
            if (!row) continue;
            it->second.row = *row;
            if (row->gone) {
                out.push_back(*row);
                pending_.erase(it);
            }
        }
    }
    while (!due_.empty() && due_.front().first <= now) {
        const auto key = due_.front().second;
        due_.pop_front();
        auto it = pending_.find(key);
        if (it == pending_.end()) continue;
        if (const table::FlowRow* row = tick.find(key)) it->second.row = *row;
        out.push_back(it->second.row);
        pending_.erase(it);
    }
}

}  // namespace flowtop::exporters
