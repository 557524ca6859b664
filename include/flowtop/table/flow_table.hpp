#pragma once
// The live flow table, owned by the single writer thread: dense rows (swap-removed, so a frame
// is the row sequence itself) with a private id index and private per-flow sampling state.
// Readers never see it; they see frames that share its row chunks copy-on-write.
#include <cstdint>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/table/flow_row.hpp"
#include "flowtop/table/flow_rows.hpp"
#include "flowtop/table/flat_index.hpp"

namespace flowtop::table {

class FlowTable {
public:
    // Applies one message (event or dump entry). now_ns is CLOCK_REALTIME.
    void apply(const ct::FlowRecord& record, std::uint64_t now_ns);

    // A full dump is complete evidence: a flow missing from it is gone, just as if a DESTROY
    // had come (flows older than flowtop never send one). Bracket the dump's apply() calls; a
    // dump speaks only for its own source (network namespace).
    void begin_sweep() noexcept { ++sweep_; }
    // Returns how many flows of `source` the sweep found gone.
    std::size_t end_sweep(std::uint64_t now_ns, std::uint16_t source = 0);

    // The kernel said the flow no longer exists (a refused GET): gone, as after a DESTROY.
    void mark_gone(ct::FlowKey key, std::uint64_t now_ns);
    // A watched namespace went away: all its flows are gone.
    std::size_t mark_source_gone(std::uint16_t source, std::uint64_t now_ns);
    // The label new rows of `source` carry in FlowRow::netns (k_no_string: none).
    void set_source_label(std::uint16_t source, StrId label);

    // Turns the counters read since the last tick into rates (over the time between a flow's
    // two latest samples) and clears the per-tick activity marks.
    void tick(std::uint64_t now_ns);

    // The rows as a frame shows them (shares chunks with the table until either changes).
    const FlowRows& rows() const noexcept { return rows_; }
    // Drops the rows that are gone; call after they were published once.
    void drop_gone();

    // Flows worth re-reading between full sweeps: an event came, traffic moved at the last
    // sample, or a flow born while we watched still lacks its first counters.
    void collect_busy(std::vector<ct::FlowRecord>& out, bool accounting_on) const;

    std::size_t size() const noexcept { return rows_.size(); }
    const FlowRow* find(ct::FlowKey key) const noexcept;

    // Visits every row. A visitor taking `const FlowRow&` only reads; one taking `FlowRow&`
    // may change rows, and only rows it really changed are written (and unshared).
    template <typename F>
    void for_each(F&& f) {
        const auto& rows = rows_;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            if constexpr (std::is_invocable_v<F&, const FlowRow&>) {
                f(rows[i]);
            } else {
                FlowRow copy = rows[i];
                f(copy);
                if (copy != rows[i]) rows_[i] = copy;
            }
        }
    }

    // Changes the row of flow `key`, if present, through `f(FlowRow&)`.
    template <typename F>
    bool update(ct::FlowKey key, F&& f) {
        auto i = row_of(key);
        if (i == FlatIndex::k_missing) return false;
        f(rows_[i]);
        return true;
    }

private:
    // What only the writer needs per flow; kept apart so sampling never touches shared chunks.
    struct Sampling {
        std::uint64_t prev_orig_bytes = 0;
        std::uint64_t prev_reply_bytes = 0;
        std::uint64_t prev_sample_ns = 0;  // when the previous counters were read
        std::uint64_t sample_ns = 0;       // when the current counters were read
        std::uint32_t seen_sweep = 0;      // the last sweep (or event) that proved it exists
        bool prev_known = false;
        bool sampled = false;     // counters were read since the last tick
        bool event_seen = false;  // an event arrived since the last tick: the flow is busy
    };

    std::uint32_t insert(const ct::FlowRecord& r);
    std::uint32_t row_of(ct::FlowKey key) const noexcept {
        const auto source = ct::key_source(key);
        return source < index_.size() ? index_[source].find(ct::key_id(key)) : FlatIndex::k_missing;
    }
    FlatIndex& index_for(std::uint16_t source) {
        if (source >= index_.size()) index_.resize(source + 1u);
        return index_[source];
    }
    bool recently_gone(ct::FlowKey key) const {
        return recently_gone_[0].contains(key) || recently_gone_[1].contains(key);
    }
    void mark_gone_at(std::uint32_t i, std::uint64_t now_ns);
    void sample(std::uint32_t i, std::uint64_t now_ns) noexcept;

    FlowRows rows_;
    std::vector<Sampling> sampling_;  // parallel to rows_
    // Per source: conntrack id -> row index. Ids repeat across namespaces, not within one.
    std::vector<FlatIndex> index_;
    std::vector<StrId> labels_;  // per source
    std::unordered_set<ct::FlowKey> recently_gone_[2];
    std::uint32_t sweep_ = 0;
    std::uint64_t last_tick_ns_ = 0;
    bool any_gone_ = false;
};

}  // namespace flowtop::table
