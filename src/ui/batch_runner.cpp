#include "flowtop/ui/batch_runner.hpp"

#include <algorithm>
#include <vector>

#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/country_groups.hpp"
#include "flowtop/ui/flow_filter.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::ui {
namespace {

// Busiest first: the order a person scanning a frame wants, and stable for scripts.
void order_rows(std::vector<const table::FlowRow*>& rows) {
    std::sort(rows.begin(), rows.end(), [](const table::FlowRow* a, const table::FlowRow* b) {
        const double ra = a->rate_known ? a->orig_rate + a->reply_rate : 0;
        const double rb = b->rate_known ? b->orig_rate + b->reply_rate : 0;
        if (ra != rb) return ra > rb;
        const auto ba = a->has_counters() ? a->ct.orig_counters.bytes + a->ct.reply_counters.bytes : 0;
        const auto bb = b->has_counters() ? b->ct.orig_counters.bytes + b->ct.reply_counters.bytes : 0;
        if (ba != bb) return ba > bb;
        return a->ct.id < b->ct.id;
    });
}

}  // namespace

int run_batch(const table::SnapshotHub& hub, const Options& options, std::FILE* out) {
    auto writer = make_batch_writer(options.format, out, {options.bits, true});
    const FlowFilter filter(options);
    const long count = options.count.value_or(1);
    std::uint64_t last_seq = 0;
    std::vector<const table::FlowRow*> rows;
    for (long written = 0; written < count;) {
        if (signals::pending_exit_signal()) return 0;
        auto snap = hub.wait_newer(last_seq, std::chrono::milliseconds(100));
        if (hub.closed()) return 1;
        if (!snap || snap->stats.seq <= last_seq) continue;
        last_seq = snap->stats.seq;
        rows.clear();
        for (const auto& row : snap->rows)
            if (filter.matches(row)) rows.push_back(&row);
        if (options.group == Group::country) {
            write_country_frame(options.format, out, *snap, group_by_country(*snap, rows),
                                options.bits, written == 0);
        } else {
            order_rows(rows);
            writer->write_frame(*snap, rows);
        }
        if (std::ferror(out)) return signals::pending_exit_signal() ? 0 : 1;
        ++written;
    }
    return 0;
}

}  // namespace flowtop::ui
