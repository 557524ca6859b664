#include "flowtop/table/flow_table.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>

namespace flowtop::table {

FlowRow* FlowTable::find(std::uint32_t id) noexcept {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : &slots_[it->second].row;
}

FlowRow& FlowTable::insert(std::uint32_t id) {
    std::uint32_t slot;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(slots_.size());
        slots_.emplace_back();
    }
    slots_[slot] = Slot{};
    slots_[slot].used = true;
    index_.emplace(id, slot);
    return slots_[slot].row;
}

void FlowTable::mark_gone(FlowRow& row, std::uint64_t now_ns) noexcept {
    row.gone = true;
    row.closed = true;
    if (!row.closed_ns) row.closed_ns = row.ct.stop_ns ? row.ct.stop_ns : now_ns;
    any_gone_ = true;
}

void FlowTable::mark_gone(std::uint32_t id, std::uint64_t now_ns) noexcept {
    if (FlowRow* row = find(id); row && !row->gone) mark_gone(*row, now_ns);
}

void FlowTable::apply(const ct::FlowRecord& r, std::uint64_t now_ns) {
    FlowRow* row = find(r.id);
    if (row && row->gone) {
        // A sweep may find a flow gone before its DESTROY is read; the DESTROY still brings the
        // final counters, and they belong in the one frame that reports the flow closed.
        if (r.kind == ct::MsgKind::destroyed && r.has_counters) {
            row->ct.has_counters = true;
            row->ct.orig_counters = r.orig_counters;
            row->ct.reply_counters = r.reply_counters;
            row->sampled = true;
            row->sample_ns = now_ns;
        }
        return;
    }
    if (!row && r.kind != ct::MsgKind::created && r.kind != ct::MsgKind::dump &&
        (recently_gone_[0].contains(r.id) || recently_gone_[1].contains(r.id)))
        return;  // a late message about a flow already reported gone and dropped
    const bool is_new = row == nullptr;
    if (is_new) {
        row = &insert(r.id);
        row->first_seen_ns = now_ns;
        // A flow we watched being born started with zero counters, so its first rate is exact.
        row->prev_known = r.kind == ct::MsgKind::created;
        // Rates are per tick: what a newborn flow sent counts over the tick it was born in.
        row->prev_sample_ns = last_tick_ns_ && last_tick_ns_ < now_ns ? last_tick_ns_ : now_ns;
        row->ct = r;
    } else {
        // Events carry only what changed; keep what we knew (counters come with dumps/DESTROY).
        ct::FlowRecord merged = r;
        if (!r.has_counters && row->ct.has_counters) {
            merged.has_counters = true;
            merged.orig_counters = row->ct.orig_counters;
            merged.reply_counters = row->ct.reply_counters;
        }
        if (r.tcp_state == ct::k_no_tcp_state) merged.tcp_state = row->ct.tcp_state;
        if (!r.has_status) {
            merged.has_status = row->ct.has_status;
            merged.status = row->ct.status;
        }
        if (!r.start_ns) merged.start_ns = row->ct.start_ns;
        row->ct = merged;
    }
    row->seen_sweep = sweep_;
    if (r.has_counters) {
        row->sampled = true;
        row->sample_ns = now_ns;
    }
    if (r.kind != ct::MsgKind::dump) row->event_seen = true;
    if (r.proto == IPPROTO_TCP && r.tcp_state != ct::k_no_tcp_state) {
        bool ended = ct::tcp_state_ended(r.tcp_state);
        if (ended && !row->closed) row->closed_ns = now_ns;
        if (!ended) row->closed_ns = 0;
        row->closed = ended;
    }
    if (r.kind == ct::MsgKind::destroyed) mark_gone(*row, now_ns);
}

std::size_t FlowTable::end_sweep(std::uint64_t now_ns) {
    std::size_t gone = 0;
    for (auto& slot : slots_) {
        if (!slot.used || slot.row.gone || slot.row.seen_sweep == sweep_) continue;
        mark_gone(slot.row, now_ns);
        ++gone;
    }
    return gone;
}

void FlowTable::tick(std::uint64_t now_ns) {
    last_tick_ns_ = now_ns;
    for (auto& slot : slots_) {
        if (!slot.used) continue;
        FlowRow& row = slot.row;
        row.event_seen = false;
        if (!row.sampled || !row.ct.has_counters) continue;
        row.sampled = false;
        const auto ob = row.ct.orig_counters.bytes;
        const auto rb = row.ct.reply_counters.bytes;
        const double dt_s = row.sample_ns > row.prev_sample_ns
                                ? static_cast<double>(row.sample_ns - row.prev_sample_ns) / 1e9
                                : 0.0;
        if (row.prev_known && dt_s > 0) {
            row.orig_rate = ob >= row.prev_orig_bytes ? (ob - row.prev_orig_bytes) / dt_s : 0.0;
            row.reply_rate = rb >= row.prev_reply_bytes ? (rb - row.prev_reply_bytes) / dt_s : 0.0;
            for (int w = 0; w < k_rate_windows; ++w) {
                // First sample seeds the average; then exponential smoothing over the window.
                double alpha = row.rate_known ? std::min(1.0, dt_s / k_rate_window_s[w]) : 1.0;
                row.orig_rate_avg[w] += static_cast<float>(alpha * (row.orig_rate - row.orig_rate_avg[w]));
                row.reply_rate_avg[w] += static_cast<float>(alpha * (row.reply_rate - row.reply_rate_avg[w]));
            }
            row.rate_known = true;
        }
        row.prev_orig_bytes = ob;
        row.prev_reply_bytes = rb;
        row.prev_sample_ns = row.sample_ns;
        row.prev_known = true;
    }
}

void FlowTable::copy_rows(std::vector<FlowRow>& out) const {
    out.reserve(out.size() + index_.size());
    for (const auto& slot : slots_)
        if (slot.used) out.push_back(slot.row);
}

void FlowTable::drop_gone() {
    // Two generations of dropped ids are enough to ignore the late messages of one more tick.
    std::swap(recently_gone_[0], recently_gone_[1]);
    recently_gone_[0].clear();
    if (!any_gone_) return;
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
        auto& slot = slots_[i];
        if (!slot.used || !slot.row.gone) continue;
        index_.erase(slot.row.ct.id);
        recently_gone_[0].insert(slot.row.ct.id);
        slot.used = false;
        free_.push_back(i);
    }
    any_gone_ = false;
}

}  // namespace flowtop::table
