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

std::uint32_t FlowTable::insert(const ct::FlowRecord& r) {
    const auto i = static_cast<std::uint32_t>(rows_.size());
    FlowRow row{};
    if (r.source < labels_.size()) row.netns = labels_[r.source];
    rows_.push_back(row);
    sampling_.push_back(Sampling{});
    index_for(r.source).insert_or_assign(r.id, i);
    return i;
}

void FlowTable::set_source_label(std::uint16_t source, StrId label) {
    if (source >= labels_.size()) labels_.resize(source + 1u, k_no_string);
    labels_[source] = label;
}

void FlowTable::mark_gone_at(std::uint32_t i, std::uint64_t now_ns) {
    FlowRow& row = rows_[i];
    row.gone = true;
    row.closed = true;
    if (!row.closed_ns) row.closed_ns = row.ct.stop_ns ? row.ct.stop_ns : now_ns;
    any_gone_ = true;
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
    sampling_[i].sampled = true;
    sampling_[i].sample_ns = now_ns;
}

void FlowTable::apply(const ct::FlowRecord& r, std::uint64_t now_ns) {
    const FlowRows& view = rows_;  // reads must not unshare chunks
    auto i = row_of(ct::flow_key(r));
    const FlowRow* existing = i == FlatIndex::k_missing ? nullptr : &view[i];
    if (existing && existing->gone) {
        // A sweep may find a flow gone before its DESTROY is read; the DESTROY still brings the
        // final counters, and they belong in the one frame that reports the flow closed.
        if (r.kind == ct::MsgKind::destroyed && r.has_counters) {
            FlowRow& row = rows_[i];
            row.ct.has_counters = true;
            row.ct.orig_counters = r.orig_counters;
            row.ct.reply_counters = r.reply_counters;
            sample(i, now_ns);
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
        s.prev_sample_ns = last_tick_ns_ && last_tick_ns_ < now_ns ? last_tick_ns_ : now_ns;
    }
    if (merged.proto == IPPROTO_TCP && r.tcp_state != ct::k_no_tcp_state) {
        const bool ended = ct::tcp_state_ended(r.tcp_state);
        if (ended && !closed) closed_ns = now_ns;
        if (!ended) closed_ns = 0;
        closed = ended;
    }

    Sampling& s = sampling_[i];
    s.seen_sweep = sweep_;
    if (r.kind != ct::MsgKind::dump) s.event_seen = true;
    if (r.has_counters) sample(i, now_ns);

    // Write only what changed: an idle flow re-read by a sweep leaves its chunk shared.
    const FlowRow& current = view[i];
    const bool changed = !existing || current.ct != merged ||
                         current.closed != closed || current.closed_ns != closed_ns;
    if (changed) {
        FlowRow& row = rows_[i];
        row.ct = merged;
        row.closed = closed;
        row.closed_ns = closed_ns;
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
    return gone;
}

void FlowTable::tick(std::uint64_t now_ns) {
    last_tick_ns_ = now_ns;
    const auto& rows = rows_;
    for (std::uint32_t i = 0; i < rows.size(); ++i) {
        Sampling& s = sampling_[i];
        s.event_seen = false;
        if (!s.sampled || !rows[i].ct.has_counters) continue;
        s.sampled = false;
        const auto ob = rows[i].ct.orig_counters.bytes;
        const auto rb = rows[i].ct.reply_counters.bytes;
        const double dt_s =
            s.sample_ns > s.prev_sample_ns ? static_cast<double>(s.sample_ns - s.prev_sample_ns) / 1e9
                                           : 0.0;
        if (s.prev_known && dt_s > 0) {
            FlowRow next = rows[i];
            next.orig_rate = ob >= s.prev_orig_bytes ? (ob - s.prev_orig_bytes) / dt_s : 0.0;
            next.reply_rate = rb >= s.prev_reply_bytes ? (rb - s.prev_reply_bytes) / dt_s : 0.0;
            for (int w = 0; w < k_rate_windows; ++w) {
                // First sample seeds the average; then exponential smoothing over the window.
                const double alpha = next.rate_known ? std::min(1.0, dt_s / k_rate_window_s[w]) : 1.0;
                next.orig_rate_avg[w] += static_cast<float>(alpha * (next.orig_rate - next.orig_rate_avg[w]));
                next.reply_rate_avg[w] += static_cast<float>(alpha * (next.reply_rate - next.reply_rate_avg[w]));
                // Below a byte a second an average is noise: let it reach zero and stay there.
                if (std::fabs(next.orig_rate_avg[w]) < 0.5f) next.orig_rate_avg[w] = 0;
                if (std::fabs(next.reply_rate_avg[w]) < 0.5f) next.reply_rate_avg[w] = 0;
            }
            next.rate_known = true;
            if (next != rows[i]) rows_[i] = next;
        }
        s.prev_orig_bytes = ob;
        s.prev_reply_bytes = rb;
        s.prev_sample_ns = s.sample_ns;
        s.prev_known = true;
    }
}

void FlowTable::collect_busy(std::vector<ct::FlowRecord>& out, bool accounting_on) const {
    for (std::uint32_t i = 0; i < rows_.size(); ++i) {
        const FlowRow& row = rows_[i];
        const Sampling& s = sampling_[i];
        if (row.gone) continue;
        const bool moving = row.rate_known && (row.orig_rate > 0 || row.reply_rate > 0);
        const bool unsampled = accounting_on && s.prev_known && !row.rate_known;
        if (s.event_seen || moving || unsampled) out.push_back(row.ct);
    }
}

void FlowTable::drop_gone() {
    // Two generations of dropped ids are enough to ignore the late messages of one more tick.
    std::swap(recently_gone_[0], recently_gone_[1]);
    recently_gone_[0].clear();
    if (!any_gone_) return;
    any_gone_ = false;
    for (std::uint32_t i = 0; i < rows_.size();) {
        if (!std::as_const(rows_)[i].gone) {
            ++i;
            continue;
        }
        const auto& dropped = std::as_const(rows_)[i].ct;
        index_[dropped.source].erase(dropped.id);
        recently_gone_[0].insert(ct::flow_key(dropped));
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
}

}  // namespace flowtop::table
