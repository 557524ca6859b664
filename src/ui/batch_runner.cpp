#include "flowtop/ui/batch_runner.hpp"

#include <algorithm>
#include <vector>

#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/country_groups.hpp"
#include "flowtop/ui/flow_filter.hpp"
#include "flowtop/ui/view_model.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::ui {

int run_batch(const table::SnapshotHub& hub, const Options& options, std::FILE* out) {
    auto writer = make_batch_writer(options.format, out, {options.bits, true});
    const FlowFilter filter(options);
    FilterError error;
    const FilterExpr expr = FilterExpr::parse(options.filter, &error);
    if (!error.message.empty())
        throw UsageError("--filter: " + error.message + " (at column " +
                         std::to_string(error.column + 1) + ")");
    // Busiest first unless --sort says otherwise: the order a person scanning a frame wants.
    SortKey sort = SortKey::rate;
    if (!options.sort.empty()) {
        auto key = parse_sort_key(options.sort);
        if (!key) throw UsageError("unknown sort column '" + options.sort + "'");
        sort = *key;
    }
    const LocalAddresses local = LocalAddresses::of_current_namespace();
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
            if (filter.matches(row) && expr.matches(*snap, row, &local)) rows.push_back(&row);
        if (options.group == Grouping::country) {
            write_country_frame(options.format, out, *snap, group_by_country(*snap, rows),
                                options.bits, written == 0);
        } else {
            sort_rows(rows, *snap, sort, false, RateWindow::tick);
            writer->write_frame(*snap, rows);
        }
        if (std::ferror(out)) return signals::pending_exit_signal() ? 0 : 1;
        ++written;
    }
    return 0;
}

}  // namespace flowtop::ui
