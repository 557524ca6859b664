#pragma once
// The per-tick contract between the writer and its hooks (enrichment, process attribution,
// detectors, exporters). A hook sees what changed this tick, not the whole table: its cost
// follows the work, not the number of rows. It may read any row by key and write only the
// enrichment part of a row. A hook that needs to revisit every row (a cache that expires) asks
// for a rolling pass and gets a bounded slice of the rows each tick.
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/table/flow_row.hpp"
#include "flowtop/util/string_pool.hpp"

namespace flowtop::table {

class FlowTable;

// The keys of the rows that changed since the previous tick. A key is in at most one of
// created and updated; an ended key may be in either of them too (a flow created and closed
// within one tick is in created and ended). Ended rows are in this tick's frame one last time.
struct TickChanges {
    std::span<const ct::FlowKey> created;  // rows new since the last tick
    std::span<const ct::FlowKey> updated;  // the kernel's values changed: counters, state, status
    std::span<const ct::FlowKey> ended;    // closed (TCP end states) or gone from the kernel
};

// What a hook gets each tick. Valid only during on_tick.
class TickContext {
  public:
    TickContext(FlowTable& table, StringPool& strings, const TickChanges& changes,
                std::uint64_t now_ns, std::span<const ct::FlowKey> pass_keys) noexcept
        : table_(table),
          strings_(strings),
          changes_(changes),
          now_ns_(now_ns),
          pass_keys_(pass_keys) {}

    const TickChanges& changes() const noexcept { return changes_; }
    std::uint64_t now_ns() const noexcept { return now_ns_; }  // CLOCK_REALTIME
    StringPool& strings() noexcept { return strings_; }

    // The row of `key`, or nullptr once it has left the table. The pointer is valid during this
    // call of on_tick only, until the next enrich().
    const FlowRow* find(ct::FlowKey key) const noexcept;
    // Changes the enrichment fields of `key` through f(FlowEnrichment&); the row is written (and
    // its chunk unshared) only if f really changed something. False when the flow is gone.
    template <typename F>
    bool enrich(ct::FlowKey key, F&& f);
    // This tick's slice of the rolling pass (empty for hooks that asked for none): over one
    // full_pass_period every row that stays that long is in some tick's slice.
    std::span<const ct::FlowKey> pass_keys() const noexcept { return pass_keys_; }

  private:
    bool write_enrichment(ct::FlowKey key, const FlowEnrichment& value);

    FlowTable& table_;
    StringPool& strings_;
    const TickChanges& changes_;
    std::uint64_t now_ns_;
    std::span<const ct::FlowKey> pass_keys_;
};

// Runs on the writer thread once per tick, after the rates are computed and before the frame
// is published. Never blocks: it drains the answers of its own workers and posts requests.
class TickHook {
  public:
    virtual ~TickHook() = default;
    virtual void on_tick(TickContext& tick) = 0;
    // How long a rolling pass over every row may take (zero: the hook needs none).
    virtual std::chrono::milliseconds full_pass_period() const noexcept { return {}; }
};

// The hooks of one writer, in the order added, each with its rolling-pass cursor.
class TickHooks {
  public:
    void add(TickHook* hook) { hooks_.push_back({hook, 0}); }
    void remove(TickHook* hook) {
        std::erase_if(hooks_, [&](const Entry& e) { return e.hook == hook; });
    }
    // Runs table.tick(now_ns), then every hook with its changes and pass slice. `interval` is
    // the time between ticks, which sizes the slices.
    void run(FlowTable& table, StringPool& strings, std::uint64_t now_ns,
             std::chrono::milliseconds interval);

  private:
    struct Entry {
        TickHook* hook;
        std::size_t cursor;
    };
    std::vector<Entry> hooks_;
    std::vector<ct::FlowKey> pass_;
};

// One tick of `table` with one hook, as the writer runs it (tests and benchmarks).
void tick_with(TickHook& hook, FlowTable& table, StringPool& strings, std::uint64_t now_ns,
               std::chrono::milliseconds interval = std::chrono::milliseconds(1000));

template <typename F>
bool TickContext::enrich(ct::FlowKey key, F&& f) {
    const FlowRow* row = find(key);
    if (!row) return false;
    FlowEnrichment value = static_cast<const FlowEnrichment&>(*row);
    f(value);
    if (value == static_cast<const FlowEnrichment&>(*row)) return true;
    return write_enrichment(key, value);
}

}  // namespace flowtop::table
