#include "flowtop/table/flow_table.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace flowtop::table {

const FlowRow* FlowTable::find(ct::FlowKey key) const noexcept {
    auto i = row_of(key);
    return i == FlatIndex::k_missing ? nullptr : &rows_[i];
}

namespace {
int proto_slot(std::uint8_t p) noexcept {
    return p == IPPROTO_TCP                             ? 0
           : p == IPPROTO_UDP                           ? 1
           : (p == IPPROTO_ICMP || p == IPPROTO_ICMPV6) ? 2
                                                        : 3;
}
}  // namespace

void FlowTable::keys_in(std::size_t from, std::size_t count, std::vector<ct::FlowKey>& out) const {
    const std::size_t end = std::min(rows_.size(), from + count);
    for (std::size_t i = from; i < end; ++i) out.push_back(ct::flow_key(rows_[i].ct));
}

bool FlowTable::set_enrichment(ct::FlowKey key, const FlowEnrichment& value) {
    const auto i = row_of(key);
    if (i == FlatIndex::k_missing) return false;
    static_cast<FlowEnrichment&>(rows_[i]) = value;
    return true;
}

void FlowTable::touch(std::uint32_t i, std::uint8_t marks) noexcept {
    Sampling& s = sampling_[i];
    s.marks |= marks;
    if (s.touched) return;
    s.touched = true;
    touched_.push_back(i);
}

void FlowTable::add_to_totals(const FlowRow& row, int sign) noexcept {
    auto add = [sign](auto& total, auto value) {
        if (sign > 0)
            total += value;
        else
            total -= value;
    };
    if (row.has_counters()) {
        add(totals_.live_orig_bytes, row.ct.orig_counters.bytes);
        add(totals_.live_reply_bytes, row.ct.reply_counters.bytes);
    }
    if (ct::offloaded(row.ct)) add(totals_.offloaded_flows, std::uint64_t{1});
    if (!row.rate_known) return;
    add(totals_.orig_rate[0], static_cast<double>(row.orig_rate));
    add(totals_.reply_rate[0], static_cast<double>(row.reply_rate));
    for (int w = 0; w < k_rate_windows; ++w) {
        add(totals_.orig_rate[w + 1], static_cast<double>(row.orig_rate_avg[w]));
        add(totals_.reply_rate[w + 1], static_cast<double>(row.reply_rate_avg[w]));
    }
}

void FlowTable::recount_totals() noexcept {
    // Sums of doubles drift as rows come and go; a sweep visits every row anyway.
    const TableTotals kept = totals_;
    totals_ = TableTotals{};
    totals_.departed_orig_bytes = kept.departed_orig_bytes;
    totals_.departed_reply_bytes = kept.departed_reply_bytes;
    for (const auto& row : std::as_const(rows_)) {
        ++totals_.flows_by_proto[proto_slot(row.ct.proto)];
        add_to_totals(row, +1);
    }
}

std::uint32_t FlowTable::insert(const ct::FlowRecord& r) {
    const auto i = static_cast<std::uint32_t>(rows_.size());
    FlowRow row{};
    if (r.source < labels_.size()) row.netns = labels_[r.source];
    row.ct.proto = r.proto;
    rows_.push_back(row);
    sampling_.push_back(Sampling{});
    index_for(r.source).insert_or_assign(r.id, i);
    ++totals_.flows_by_proto[proto_slot(r.proto)];
    touch(i, k_created);
    return i;
}

void FlowTable::set_source_label(std::uint16_t source, StrId label) {
    if (source >= labels_.size()) labels_.resize(source + 1u, k_no_string);
    labels_[source] = label;
}

void FlowTable::mark_gone_at(std::uint32_t i, std::uint64_t now_ns) {
    FlowRow& row = rows_[i];
    if (!row.closed) touch(i, k_ended);
    row.gone = true;
    row.closed = true;
    if (!row.closed_ns) row.closed_ns = row.ct.stop_ns ? row.ct.stop_ns : now_ns;
    gone_rows_.push_back(i);
}

void FlowTable::mark_gone(ct::FlowKey key, std::uint64_t now_ns) {
    auto i = row_of(key);
    if (i != FlatIndex::k_missing && !std::as_const(rows_)[i].gone) mark_gone_at(i, now_ns);
}

std::size_t FlowTable::mark_source_gone(std::uint16_t source, std::uint64_t now_ns) {
    std::size_t gone = 0;
    const auto& rows = rows_;
    for (std::uint32_t i = 0; i < rows.size(); ++i) {
        if (rows[i].gone || rows[i].ct.source != source) continue;
        mark_gone_at(i, now_ns);
        ++gone;
    }
    return gone;
}

void FlowTable::sample(std::uint32_t i, std::uint64_t now_ns) noexcept {
    // Call before the row takes the new counters: its old ones are the previous sample's.
    if (!sampling_[i].sampled) {
        const auto& ct = std::as_const(rows_)[i].ct;
        sampled_.push_back({i, ct.has_counters ? ct.orig_counters.bytes : 0,
                            ct.has_counters ? ct.reply_counters.bytes : 0});
    }
    sampling_[i].sampled = true;
    sampling_[i].sample_ms = ms_of(now_ns);
    touch(i);
}

void FlowTable::apply(const ct::FlowRecord& r, std::uint64_t now_ns) {
    const FlowRows& view = rows_;  // reads must not unshare chunks
    auto i = row_of(ct::flow_key(r));
    const FlowRow* existing = i == FlatIndex::k_missing ? nullptr : &view[i];
    if (existing && existing->gone) {
        // A sweep may find a flow gone before its DESTROY is read; the DESTROY still brings the
        // final counters, and they belong in the one frame that reports the flow closed.
        if (r.kind == ct::MsgKind::destroyed && r.has_counters) {
            sample(i, now_ns);
            add_to_totals(view[i], -1);
            FlowRow& row = rows_[i];
            row.ct.has_counters = true;
            row.ct.orig_counters = r.orig_counters;
            row.ct.reply_counters = r.reply_counters;
            add_to_totals(row, +1);
            touch(i, k_updated);
        }
        return;
    }
    if (!existing && r.kind != ct::MsgKind::created && r.kind != ct::MsgKind::dump &&
        recently_gone(ct::flow_key(r)))
        return;  // a late message about a flow already reported gone and dropped

    ct::FlowRecord merged = r;
    merged.kind = ct::MsgKind::dump;  // rows keep values, not how they arrived
    bool closed = false;
    std::uint64_t closed_ns = 0;
    if (existing) {
        // Events carry only what changed; keep what we knew (counters come with dumps/DESTROY).
        const auto& old = existing->ct;
        if (!r.has_counters && old.has_counters) {
            merged.has_counters = true;
            merged.orig_counters = old.orig_counters;
            merged.reply_counters = old.reply_counters;
        }
        if (r.tcp_state == ct::k_no_tcp_state) merged.tcp_state = old.tcp_state;
        if (!r.has_status) {
            merged.has_status = old.has_status;
            merged.status = old.status;
        }
        if (!r.start_ns) merged.start_ns = old.start_ns;
        closed = existing->closed;
        closed_ns = existing->closed_ns;
    } else {
        i = insert(r);
        rows_[i].first_seen_ns = now_ns;
        Sampling& s = sampling_[i];
        // A flow we watched being born started with zero counters, so its first rate is exact;
        // what it sent counts over the tick it was born in.
        s.prev_known = r.kind == ct::MsgKind::created;
        s.prev_sample_ms = ms_of(last_tick_ns_ && last_tick_ns_ < now_ns ? last_tick_ns_ : now_ns);
    }
    if (merged.proto == IPPROTO_TCP && r.tcp_state != ct::k_no_tcp_state) {
        const bool ended = ct::tcp_state_ended(r.tcp_state);
        if (ended && !closed) closed_ns = now_ns;
        if (!ended) closed_ns = 0;
        closed = ended;
    }

    Sampling& s = sampling_[i];
    s.seen_sweep = sweep_;
    if (r.kind != ct::MsgKind::dump) {
        s.event_seen = true;
        touch(i);
    }
    if (r.has_counters) sample(i, now_ns);

    // Write only what changed: an idle flow re-read by a sweep leaves its chunk shared.
    const FlowRow& current = view[i];
    const bool was_closed = current.closed;
    const bool changed = !existing || current.ct != merged || current.closed != closed ||
                         current.closed_ns != closed_ns;
    if (changed) {
        add_to_totals(current, -1);
        FlowRow& row = rows_[i];
        row.ct = merged;
        row.closed = closed;
        row.closed_ns = closed_ns;
        add_to_totals(row, +1);
        std::uint8_t marks = existing ? k_updated : 0;
        if (closed && !was_closed) marks |= k_ended;
        if (marks) touch(i, marks);
    }
    if (r.kind == ct::MsgKind::destroyed) mark_gone_at(i, now_ns);
}

std::size_t FlowTable::end_sweep(std::uint64_t now_ns, std::uint16_t source) {
    std::size_t gone = 0;
    const auto& rows = rows_;
    for (std::uint32_t i = 0; i < rows.size(); ++i) {
        if (rows[i].gone || rows[i].ct.source != source || sampling_[i].seen_sweep == sweep_)
            continue;
        mark_gone_at(i, now_ns);
        ++gone;
    }
    recount_totals();
    return gone;
}

void FlowTable::rate_update(const SampledRow& sampled) {
    const std::uint32_t i = sampled.row;
    Sampling& s = sampling_[i];
    const FlowRow& row = std::as_const(rows_)[i];
    const auto ob = row.ct.orig_counters.bytes;
    const auto rb = row.ct.reply_counters.bytes;
    // Modular: right across the clock's wrap. A gap of over a day means the wall clock stepped
    // back, and no rate is better than a wrong one.
    const std::uint32_t dt_ms = s.sample_ms - s.prev_sample_ms;
    const double dt_s = dt_ms < 86'400'000u ? static_cast<double>(dt_ms) / 1e3 : 0.0;
    if (s.prev_known && dt_s > 0) {
        FlowRow next = row;
        next.orig_rate = static_cast<float>(
            ob >= sampled.prev_orig_bytes ? static_cast<double>(ob - sampled.prev_orig_bytes) / dt_s
                                          : 0.0);
        next.reply_rate =
            static_cast<float>(rb >= sampled.prev_reply_bytes
                                   ? static_cast<double>(rb - sampled.prev_reply_bytes) / dt_s
                                   : 0.0);
        for (int w = 0; w < k_rate_windows; ++w) {
            // First sample seeds the average; then exponential smoothing over the window.
            const double alpha = next.rate_known ? std::min(1.0, dt_s / k_rate_window_s[w]) : 1.0;
            next.orig_rate_avg[w] +=
                static_cast<float>(alpha * (next.orig_rate - next.orig_rate_avg[w]));
            next.reply_rate_avg[w] +=
                static_cast<float>(alpha * (next.reply_rate - next.reply_rate_avg[w]));
            // Below a byte a second an average is noise: let it reach zero and stay there.
            if (std::fabs(next.orig_rate_avg[w]) < 0.5f) next.orig_rate_avg[w] = 0;
            if (std::fabs(next.reply_rate_avg[w]) < 0.5f) next.reply_rate_avg[w] = 0;
        }
        next.rate_known = true;
        if (next != row) {
            add_to_totals(row, -1);
            add_to_totals(next, +1);
            rows_[i] = next;
        }
    }
    s.prev_sample_ms = s.sample_ms;
    s.prev_known = true;
}

bool FlowTable::stays_busy(std::uint32_t i) const noexcept {
    const FlowRow& row = rows_[i];
    if (row.gone) return false;
    const bool moving = row.rate_known && (row.orig_rate > 0 || row.reply_rate > 0);
    const bool unsampled = sampling_[i].prev_known && !row.rate_known;
    return moving || unsampled;
}

namespace {
// A sweep touches every row, the ticks between sweeps a few: the lists keep memory for the few.
template <typename T>
void release_or_clear(std::vector<T>& v) {
    if (v.capacity() > 65536 && v.size() < v.capacity() / 4)
        std::vector<T>().swap(v);
    else
        v.clear();
}
}  // namespace

TickChanges FlowTable::tick(std::uint64_t now_ns) {
    last_tick_ns_ = now_ns;
    created_.clear();
    updated_.clear();
    ended_.clear();
    for (const auto& sampled : sampled_) {
        sampling_[sampled.row].sampled = false;
        if (std::as_const(rows_)[sampled.row].ct.has_counters) rate_update(sampled);
    }
    release_or_clear(sampled_);
    for (const std::uint32_t i : touched_) {
        const Sampling& s = sampling_[i];
        const auto key = ct::flow_key(std::as_const(rows_)[i].ct);
        if (s.marks & k_created)
            created_.push_back(key);
        else if (s.marks & k_updated)
            updated_.push_back(key);
        if (s.marks & k_ended) ended_.push_back(key);
    }
    // Busy at the next tick: last tick's busy rows that saw nothing since (and still qualify),
    // then this tick's touched rows that qualify.
    std::vector<ct::FlowKey> next_busy;
    next_busy.reserve(busy_.size());
    for (const auto key : busy_) {
        const auto i = row_of(key);
        if (i == FlatIndex::k_missing || sampling_[i].touched) continue;
        Sampling& s = sampling_[i];
        if (stays_busy(i)) {
            next_busy.push_back(key);
            if (s.busy_ticks < 3) ++s.busy_ticks;
        } else {
            s.busy_ticks = 0;
        }
    }
    for (const std::uint32_t i : touched_) {
        Sampling& s = sampling_[i];
        if (stays_busy(i)) {
            next_busy.push_back(ct::flow_key(std::as_const(rows_)[i].ct));
            if (s.busy_ticks < 3) ++s.busy_ticks;
        } else {
            s.busy_ticks = 0;
        }
        s.touched = false;
        s.event_seen = false;
        s.marks = 0;
    }
    busy_.swap(next_busy);
    release_or_clear(touched_);
    return {created_, updated_, ended_};
}

void FlowTable::collect_busy(std::vector<ct::FlowRecord>& out, bool accounting_on) {
    if (++busy_pass_ == 0) {
        // Wrapped: a stamp left from 65,536 passes ago must not pass for this one.
        for (auto& s : sampling_) s.busy_stamp = 0;
        busy_pass_ = 1;
    }
    auto add = [&](std::uint32_t i) {
        Sampling& s = sampling_[i];
        const FlowRow& row = std::as_const(rows_)[i];
        if (row.gone || s.busy_stamp == busy_pass_) return;
        const bool moving = row.rate_known && (row.orig_rate > 0 || row.reply_rate > 0);
        const bool unsampled = accounting_on && s.prev_known && !row.rate_known;
        if (!(s.event_seen || moving || unsampled)) return;
        s.busy_stamp = busy_pass_;
        out.push_back(row.ct);
    };
    for (const std::uint32_t i : touched_) add(i);
    for (const auto key : busy_)
        if (const auto i = row_of(key); i != FlatIndex::k_missing) add(i);
}

void FlowTable::drop_gone() {
    drop_gone_rows();
    cluster_busy();  // after the drops: it moves rows, and gone_rows_ names rows by index
}

void FlowTable::drop_gone_rows() {
    // Two generations of dropped ids are enough to ignore the late messages of one more tick.
    std::swap(recently_gone_[0], recently_gone_[1]);
    recently_gone_[0].clear();
    if (gone_rows_.empty()) return;
    // Highest first: swap-remove moves the last row into the hole, and the last row is never
    // one still waiting to be dropped (those are all below the hole).
    std::sort(gone_rows_.begin(), gone_rows_.end(), std::greater<>());
    gone_rows_.erase(std::unique(gone_rows_.begin(), gone_rows_.end()), gone_rows_.end());
    for (const std::uint32_t i : gone_rows_) {
        const FlowRow& dropped = std::as_const(rows_)[i];
        if (!dropped.gone) continue;
        add_to_totals(dropped, -1);
        --totals_.flows_by_proto[proto_slot(dropped.ct.proto)];
        if (dropped.has_counters()) {
            totals_.departed_orig_bytes += dropped.ct.orig_counters.bytes;
            totals_.departed_reply_bytes += dropped.ct.reply_counters.bytes;
        }
        index_[dropped.ct.source].erase(dropped.ct.id);
        recently_gone_[0].insert(ct::flow_key(dropped.ct));
        const std::uint32_t last = static_cast<std::uint32_t>(rows_.size() - 1);
        if (i != last) {
            // Swap-remove keeps rows dense, so a frame needs no holes skipped.
            rows_[i] = std::as_const(rows_)[last];
            sampling_[i] = sampling_[last];
            const auto& moved = std::as_const(rows_)[i].ct;
            index_[moved.source].insert_or_assign(moved.id, i);
        }
        rows_.pop_back();
        sampling_.pop_back();
    }
    gone_rows_.clear();
    hot_begin_ = std::min(hot_begin_, rows_.size());
}

void FlowTable::swap_rows(std::uint32_t a, std::uint32_t b) {
    const FlowRow row_a = std::as_const(rows_)[a];
    rows_[a] = std::as_const(rows_)[b];
    rows_[b] = row_a;
    std::swap(sampling_[a], sampling_[b]);
    const auto& at_a = std::as_const(rows_)[a].ct;
    const auto& at_b = std::as_const(rows_)[b].ct;
    index_[at_a.source].insert_or_assign(at_a.id, a);
    index_[at_b.source].insert_or_assign(at_b.id, b);
}

void FlowTable::cluster_busy() {
    const std::size_t n = rows_.size();
    hot_begin_ = std::min(hot_begin_, n);
    if (n < 8 * FlowRows::k_chunk_rows) return;  // a small table has few chunks to unshare
    // Idle rows pile up in the zone as flows calm down: start it afresh from the end when it
    // has grown well past the busy set (the busy rows near its old start move again, once).
    if (n - hot_begin_ > 2 * busy_.size() + 4 * FlowRows::k_chunk_rows) hot_begin_ = n;
    // A flow busy one tick (a single event) does not pay for its move; one busy for three
    // ticks in a row likely stays busy. Bounded per tick: each move writes two rows.
    std::size_t moves = 0;
    for (const auto key : busy_) {
        if (moves >= 4096 || hot_begin_ == 0) break;
        const auto i = row_of(key);
        if (i == FlatIndex::k_missing || i >= hot_begin_ || sampling_[i].busy_ticks < 3) continue;
        const auto target = static_cast<std::uint32_t>(hot_begin_ - 1);
        --hot_begin_;
        if (target != i) swap_rows(i, target);
        ++moves;
    }
}

}  // namespace flowtop::table
