#pragma once
// The live flow table, owned by the single writer thread: dense rows (swap-removed, so a frame
// is the row sequence itself) with a private id index and private per-flow sampling state.
// Readers never see it; they see frames that share its row chunks copy-on-write.
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/table/flat_index.hpp"
#include "flowtop/table/flow_row.hpp"
#include "flowtop/table/flow_rows.hpp"
#include "flowtop/table/tick.hpp"

namespace flowtop::table {

// Sums over the whole table that the writer keeps as rows change (never by a scan), so every
// frame carries them and a reader that skips frames still counts every departed flow's bytes.
struct TableTotals {
    std::uint64_t flows_by_proto[4] = {};   // tcp, udp, icmp (both versions), other
    std::uint64_t departed_orig_bytes = 0;  // counters of flows that have left the table
    std::uint64_t departed_reply_bytes = 0;
    std::uint64_t live_orig_bytes = 0;  // counters of the rows in the table now
    std::uint64_t live_reply_bytes = 0;
    // Rates summed over rows with a known rate: [0] the last tick, then the windows of FlowRow.
    double orig_rate[1 + k_rate_windows] = {};
    double reply_rate[1 + k_rate_windows] = {};
    std::uint64_t offloaded_flows = 0;  // rows a flowtable has taken over (counters may stall)
};

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
    StrId source_label(std::uint16_t source) const noexcept {
        return source < labels_.size() ? labels_[source] : k_no_string;
    }

    // Turns the counters read since the last tick into rates (over the time between a flow's
    // two latest samples), and returns what changed since the last tick. Costs what changed,
    // not the table's size. The changes stay valid until the next tick().
    TickChanges tick(std::uint64_t now_ns);

    // The rows as a frame shows them (shares chunks with the table until either changes).
    const FlowRows& rows() const noexcept { return rows_; }
    // Drops the rows that are gone; call after they were published once.
    void drop_gone();

    // Flows worth re-reading between full sweeps: an event came, traffic moved at the last
    // sample, or a flow born while we watched still lacks its first counters.
    void collect_busy(std::vector<ct::FlowRecord>& out, bool accounting_on);

    std::size_t size() const noexcept { return rows_.size(); }
    const FlowRow* find(ct::FlowKey key) const noexcept;
    // The keys of rows [from, from + count) in table order (for rolling passes).
    void keys_in(std::size_t from, std::size_t count, std::vector<ct::FlowKey>& out) const;
    const TableTotals& totals() const noexcept { return totals_; }

    // Reads every row (tests and benchmarks; the writer's hooks get changes instead).
    template <typename F>
    void for_each(F&& f) const {
        for (const auto& row : rows_) f(row);
    }

    // Sets the enrichment part of flow `key`'s row, if present (see TickContext::enrich).
    bool set_enrichment(ct::FlowKey key, const FlowEnrichment& value);

  private:
    // What only the writer needs per flow; kept apart so sampling never touches shared chunks.
    // 16 bytes: at a million flows every byte here is a megabyte. The counters of the previous
    // sample are the row's own until a new sample arrives; they are kept aside (SampledRow)
    // only for the rows sampled this tick.
    struct Sampling {
        // Milliseconds since the table's epoch (wrapping after 49 days; only differences of
        // seconds are taken): when the previous and the current counters were read.
        std::uint32_t prev_sample_ms = 0;
        std::uint32_t sample_ms = 0;
        std::uint32_t seen_sweep = 0;  // the last sweep (or event) that proved it exists
        std::uint16_t busy_stamp = 0;  // collect_busy's pass that listed it last
        std::uint8_t marks = 0;        // k_created, k_updated, k_ended since the last tick
        bool prev_known : 1 = false;
        bool sampled : 1 = false;         // counters were read since the last tick
        bool event_seen : 1 = false;      // an event arrived since the last tick: the flow is busy
        bool touched : 1 = false;         // in touched_
        std::uint8_t busy_ticks : 2 = 0;  // ticks in a row it was busy (saturates at 3)
    };
    static_assert(sizeof(Sampling) == 16);
    static constexpr std::uint8_t k_created = 1, k_updated = 2, k_ended = 4;
    struct SampledRow {
        std::uint32_t row;
        std::uint64_t prev_orig_bytes;  // the counters before this tick's first sample
        std::uint64_t prev_reply_bytes;
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
    void touch(std::uint32_t i, std::uint8_t marks = 0) noexcept;
    void mark_gone_at(std::uint32_t i, std::uint64_t now_ns);
    void sample(std::uint32_t i, std::uint64_t now_ns) noexcept;
    void rate_update(const SampledRow& sampled);
    void add_to_totals(const FlowRow& row, int sign) noexcept;
    void recount_totals() noexcept;
    // A row that deserves a GET next tick whatever happens meanwhile (accounting aside).
    bool stays_busy(std::uint32_t i) const noexcept;
    // Moves rows busy for several ticks into the hot zone at the end of the table, so that a
    // tick's writes unshare a few chunks instead of every chunk holding one busy row.
    void cluster_busy();
    void drop_gone_rows();
    void swap_rows(std::uint32_t a, std::uint32_t b);

    FlowRows rows_;
    std::vector<Sampling> sampling_;  // parallel to rows_
    // Per source: conntrack id -> row index. Ids repeat across namespaces, not within one.
    std::vector<FlatIndex> index_;
    std::vector<StrId> labels_;  // per source
    std::unordered_set<ct::FlowKey> recently_gone_[2];
    std::vector<std::uint32_t> touched_;    // rows sampled, evented or changed since the last tick
    std::vector<SampledRow> sampled_;       // rows sampled since the last tick
    std::vector<std::uint32_t> gone_rows_;  // rows marked gone since the last drop_gone
    std::vector<ct::FlowKey> busy_;         // moving or awaiting a first rate at the last tick
    std::vector<ct::FlowKey> created_, updated_, ended_;  // the last tick's changes
    TableTotals totals_;
    std::uint32_t sweep_ = 0;
    std::uint16_t busy_pass_ = 0;
    std::size_t hot_begin_ = 0;  // rows [hot_begin_, size) are the hot zone
    std::uint64_t last_tick_ns_ = 0;
    std::uint64_t epoch_ns_ = 0;  // Sampling's clock starts here
    bool epoch_set_ = false;
    std::uint32_t ms_of(std::uint64_t now_ns) noexcept {
        if (!epoch_set_) {
            epoch_ns_ = now_ns;
            epoch_set_ = true;
        }
        return static_cast<std::uint32_t>((now_ns - epoch_ns_) / 1'000'000);
    }
};

}  // namespace flowtop::table
