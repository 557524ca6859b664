#pragma once
// Every ended flow exactly once, with its final counters. A flow ends in one of two ways:
//  - it leaves the kernel's table (DESTROY, or gone from a complete dump): the row is final;
//  - TCP reaches an end state (TIME_WAIT, CLOSE) while the kernel keeps the entry for minutes.
//    The state change arrives as an event without counters; the writer re-reads the flow's
//    counters at the next tick. So such a flow is held for a grace period and its row kept up
//    to date, then reported (or at once when it leaves the table meanwhile).
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "flowtop/table/tick.hpp"

namespace flowtop::exporters {

class EndedFlows {
  public:
    explicit EndedFlows(std::uint64_t grace_ns = 2'000'000'000ull) : grace_ns_(grace_ns) {}

    // Call once per tick from a hook; appends the rows whose end became final this tick.
    void collect(table::TickContext& tick, std::vector<table::FlowRow>& out);
    std::size_t pending() const noexcept { return pending_.size(); }

  private:
    struct Pending {
        table::FlowRow row;
        std::uint64_t due_ns;
    };
    std::uint64_t grace_ns_;
    std::unordered_map<ct::FlowKey, Pending> pending_;
    std::deque<std::pair<std::uint64_t, ct::FlowKey>> due_;  // in the order they ended
};

}  // namespace flowtop::exporters
