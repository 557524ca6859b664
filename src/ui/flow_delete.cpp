#include "flowtop/ui/flow_delete.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/flow_filter.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::ui {

std::string flow_summary(const ct::FlowRecord& ct) {
    const char* proto = ct::proto_name(ct.proto);
    std::string text = (proto ? std::string(proto) : std::to_string(ct.proto)) + " " +
                       addr_port_text(ct, ct.orig.src, ct.orig.sport) + " -> " +
                       addr_port_text(ct, ct.orig.dst, ct.orig.dport);
    if (ct::nat_of(ct) != ct::Nat::none)
        text += " as " + addr_port_text(ct, ct.reply.dst, ct.reply.dport) + " -> " +
                addr_port_text(ct, ct.reply.src, ct.reply.sport);
    if (ct.zone) text += " zone " + std::to_string(ct.zone);
    return text;
}

std::string delete_outcome(int err) {
    if (err == 0) return "deleted";
    if (err == ENOENT) return "gone already";
    return std::string("failed: ") + std::strerror(err);
}

std::string delete_refusal(const table::FlowRow& row, bool paused, const table::Snapshot* latest) {
    if (row.gone) return "this flow has ended: its entry is gone already";
    if (!paused) return "";
    // Paused, the screen shows an old frame: delete only what is still the same entry now.
    if (latest)
        for (const auto& now : latest->rows)
            if (now.ct.source == row.ct.source && now.ct.id == row.ct.id) {
                if (!now.gone && now.ct.orig == row.ct.orig && now.ct.zone == row.ct.zone)
                    return "";
                break;
            }
    return "paused on a stale row (the flow has ended or changed): resume with Space first";
}

int run_delete_matching(const table::SnapshotHub& hub, const Options& options,
                        const DeleteFlow& remove, std::FILE* out) {
    // The second frame: the first has the flows, the next their processes and names too, so
    // proc: and host:NAME terms match as they do on the screen. Bounded: a slow first tick
    // (a huge table) falls back to the latest frame there is.
    table::SnapshotPtr snap;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline && !signals::pending_exit_signal()) {
        auto next = hub.wait_newer(snap ? snap->stats.seq : 0, std::chrono::milliseconds(100));
        if (hub.closed()) return 1;
        if (next) snap = next;
        if (snap && snap->stats.seq >= 2) break;
    }
    if (!snap) return 1;
    const FlowFilter filter(options);
    const LocalAddresses local = LocalAddresses::of_current_namespace();
    std::vector<const table::FlowRow*> rows;
    for (const auto& row : snap->rows)
        if (!row.gone && filter.matches(row) && options.filter_expr.matches(*snap, row, &local) &&
            options.delete_expr.matches(*snap, row, &local))
            rows.push_back(&row);
    const bool json = options.format == OutputFormat::json;
    std::vector<Field> scratch;
    std::size_t deleted = 0, gone = 0, failed = 0;
    for (const auto* row : rows) {
        const char* word = "dry_run";
        std::string outcome = "would delete";
        if (options.yes) {
            const int err = remove ? remove(row->ct) : EOPNOTSUPP;
            outcome = delete_outcome(err);
            word = err == 0 ? "deleted" : err == ENOENT ? "gone" : "failed";
            (err == 0 ? deleted : err == ENOENT ? gone : failed) += 1;
        }
        if (json) {
            const std::string extra = std::string(",\"delete\":\"") + word + '"';
            std::fprintf(out, "%s\n", flow_json(*snap, *row, extra, scratch).c_str());
        } else {
            std::fprintf(out, "%s: %s (id %u)\n", outcome.c_str(), flow_summary(row->ct).c_str(),
                         row->ct.id);
        }
    }
    std::fflush(out);
    if (!options.yes)
        std::fprintf(stderr,
                     "flowtop: %zu flow%s match; dry run, nothing deleted (add --yes to delete "
                     "them)\n",
                     rows.size(), rows.size() == 1 ? "" : "s");
    else
        std::fprintf(stderr, "flowtop: %zu deleted, %zu gone already, %zu failed\n", deleted, gone,
                     failed);
    return failed ? 1 : 0;
}

}  // namespace flowtop::ui
