#include "flowtop/ui/batch_runner.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>
#include <vector>

#include "flowtop/detect/alert_format.hpp"
#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/country_groups.hpp"
#include "flowtop/ui/flow_filter.hpp"
#include "flowtop/ui/table_pressure.hpp"
#include "flowtop/ui/view_model.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::ui {

namespace {

// The alerts new or changed since the last frame written, in the form of the output: JSON
// lines, CSV rows (as '#' comment lines among flow rows), or a line for people. By sequence
// number, so a frame skipped while we wrote still has its alerts shown.
class AlertPrinter {
  public:
    AlertPrinter(OutputFormat format, bool alerts_only, std::FILE* out)
        : format_(format), alerts_only_(alerts_only), out_(out) {}

    void print(const table::Snapshot& snap) {
        const auto& log = snap.alerts;
        if (!log || log->seq <= last_seq_) return;
        std::string text;
        for (const auto& a : log->alerts) {
            if (a->seq <= last_seq_) continue;
            const bool is_new = a->id > last_id_;
            last_id_ = std::max(last_id_, a->id);
            switch (format_) {
                case OutputFormat::json:
                    text += detect::alert_json(*a, is_new);
                    break;
                case OutputFormat::csv:
                    if (alerts_only_ && !header_) {
                        text += std::string(detect::alert_csv_header()) + "\n";
                        header_ = true;
                    }
                    text += (alerts_only_ ? "" : "# ") + detect::alert_csv(*a, is_new);
                    break;
                case OutputFormat::table:
                    text += detect::alert_line(*a, is_new);
                    break;
            }
            text += '\n';
        }
        last_seq_ = log->seq;
        std::fputs(text.c_str(), out_);
        std::fflush(out_);
    }

  private:
    OutputFormat format_;
    bool alerts_only_;
    std::FILE* out_;
    std::uint64_t last_seq_ = 0;
    std::uint64_t last_id_ = 0;
    bool header_ = false;
};

}  // namespace

int run_batch(const table::SnapshotHub& hub, const Options& options, std::FILE* out) {
    auto writer = make_batch_writer(options.format, out, {options.bits, true});
    const FlowFilter filter(options);
    const FilterExpr& expr = options.filter_expr;
    // Busiest first unless --sort says otherwise: the order a person scanning a frame wants.
    const SortKey sort = options.sort_key.value_or(SortKey::rate);
    LocalAddresses local = LocalAddresses::of_current_namespace(lan_networks(options));
    AddressWatch address_watch;
    enrich::LeaseBook leases(lease_paths(options));
    // Alerts only: a stream for a SIEM or mail, until stopped (or -c frames).
    const long count = options.count.value_or(options.alerts_only ? LONG_MAX : 1);
    AlertPrinter alerts(options.format, options.alerts_only, out);
    std::uint64_t last_seq = 0;
    std::vector<const table::FlowRow*> rows;
    for (long written = 0; written < count;) {
        if (signals::pending_exit_signal()) return 0;
        auto snap = hub.wait_newer(last_seq, std::chrono::milliseconds(100));
        if (hub.closed()) return 1;
        if (!snap || snap->stats.seq <= last_seq) continue;
        last_seq = snap->stats.seq;
        // Before the frame's header line: a JSON reader that collects a frame's flows after
        // its header never meets an alert line among them.
        alerts.print(*snap);
        if (options.alerts_only) {
            if (std::ferror(out)) return signals::pending_exit_signal() ? 0 : 1;
            ++written;
            continue;
        }
        if (address_watch.changed(snap->stats.time_ns))
            local = LocalAddresses::of_current_namespace(lan_networks(options));
        rows.clear();
        for (const auto& row : snap->rows)
            if (filter.matches(row) && expr.matches(*snap, row, &local)) rows.push_back(&row);
        if (options.group == Grouping::country) {
            write_country_frame(options.format, out, *snap, group_by_country(*snap, rows),
                                options.bits, written == 0);
        } else if (options.group == Grouping::client) {
            leases.refresh();
            write_client_frame(options.format, out, *snap,
                               group_by_client(*snap, rows, local, &leases), options.bits,
                               written == 0);
        } else if (options.group == Grouping::table) {
            write_table_frame(options.format, out, *snap, table_consumers(*snap, rows),
                              written == 0);
        } else {
            sort_rows(rows, *snap, sort, false, RateWindow::tick);
            writer->write_frame(*snap, rows);
        }
        if (std::fflush(out) != 0 || std::ferror(out)) {
            const int err = errno;
            // A closed pipe (`| head`) ends flowtop the way SIGPIPE would: no message.
            if (signals::pending_exit_signal()) return 0;
            // /dev/full, a full disk, a closed descriptor: one line, exit 1.
            throw Error(errno_message("cannot write the output", err ? err : EIO));
        }
        ++written;
    }
    return 0;
}

}  // namespace flowtop::ui
