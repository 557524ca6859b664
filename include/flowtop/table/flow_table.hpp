#pragma once
// The live flow table, owned by the single writer thread: a dense slab of rows with a private
// hash index. Readers never see it; they see snapshots built from it once per tick.
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/table/flow_row.hpp"

namespace flowtop::table {

class FlowTable {
public:
    // Applies one message (event or dump entry). now_ns is CLOCK_REALTIME.
    void apply(const ct::FlowRecord& record, std::uint64_t now_ns);

    // A full dump is complete evidence: a flow missing from it is gone, just as if a DESTROY
    // had come (flows older than flowtop never send one). Bracket the dump's apply() calls.
    void begin_sweep() noexcept { ++sweep_; }
    // Returns how many flows the sweep found gone.
    std::size_t end_sweep(std::uint64_t now_ns);

    // Turns the counters read since the last tick into rates (over the time between a flow's
    // two latest samples) and clears the per-tick activity marks.
    void tick(std::uint64_t now_ns);

    // Appends every row (live and just-gone) to out.
    void copy_rows(std::vector<FlowRow>& out) const;
    // Drops the rows that are gone; call after they were published once.
    void drop_gone();

    // The kernel said the flow no longer exists (a refused GET): gone, as after a DESTROY.
    void mark_gone(std::uint32_t id, std::uint64_t now_ns) noexcept;

    std::size_t size() const noexcept { return index_.size(); }
    FlowRow* find(std::uint32_t id) noexcept;

    template <typename F>
    void for_each(F&& f) {
        for (auto& slot : slots_)
            if (slot.used) f(slot.row);
    }

private:
    struct Slot {
        FlowRow row;
        bool used = false;
    };
    FlowRow& insert(std::uint32_t id);
    void mark_gone(FlowRow& row, std::uint64_t now_ns) noexcept;

    std::vector<Slot> slots_;
    std::vector<std::uint32_t> free_;
    std::unordered_map<std::uint32_t, std::uint32_t> index_;  // conntrack id -> slot
    std::unordered_set<std::uint32_t> recently_gone_[2];
    std::uint32_t sweep_ = 0;
    std::uint64_t last_tick_ns_ = 0;
    bool any_gone_ = false;
};

}  // namespace flowtop::table
