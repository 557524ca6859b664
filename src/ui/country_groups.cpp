#include "flowtop/ui/country_groups.hpp"

#include <algorithm>
#include <cinttypes>
#include <unordered_map>

#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/flow_fields.hpp"

namespace flowtop::ui {

std::vector<CountryRow> group_by_country(const table::Snapshot& snap,
                                         std::span<const table::FlowRow* const> rows) {
    std::unordered_map<StrId, CountryRow> by_id;
    for (const auto* r : rows) {
        auto& c = by_id[r->dst_country];
        ++c.flows;
        if (r->has_counters()) {
            c.orig_bytes += r->ct.orig_counters.bytes;
            c.reply_bytes += r->ct.reply_counters.bytes;
        }
        if (r->rate_known) {
            c.orig_rate += r->orig_rate;
            c.reply_rate += r->reply_rate;
        }
    }
    std::vector<CountryRow> out;
    out.reserve(by_id.size());
    for (auto& [id, row] : by_id) {
        row.country = id == k_no_string ? std::string() : std::string(snap.str(id));
        out.push_back(std::move(row));
    }
    std::sort(out.begin(), out.end(), [](const CountryRow& a, const CountryRow& b) {
        const double ra = a.orig_rate + a.reply_rate, rb = b.orig_rate + b.reply_rate;
        if (ra != rb) return ra > rb;
        const auto ba = a.orig_bytes + a.reply_bytes, bb = b.orig_bytes + b.reply_bytes;
        if (ba != bb) return ba > bb;
        if (a.flows != b.flows) return a.flows > b.flows;
        return a.country < b.country;
    });
    return out;
}

void write_country_frame(OutputFormat format, std::FILE* out, const table::Snapshot& snap,
                         const std::vector<CountryRow>& rows, bool bits, bool csv_header) {
    const std::string ts = rfc3339(snap.stats.time_ns);
    switch (format) {
        case OutputFormat::json:
            for (const auto& c : rows) {
                std::string country =
                    c.country.empty() ? "null" : '"' + json_escape(c.country) + '"';
                std::fprintf(out,
                             "{\"type\":\"country\",\"ts\":\"%s\",\"seq\":%" PRIu64
                             ",\"country\":%s,\"flows\":%" PRIu64 ",\"orig_bytes\":%" PRIu64
                             ",\"reply_bytes\":%" PRIu64
                             ",\"orig_rate\":%.1f,\"reply_rate\":%.1f}\n",
                             ts.c_str(), snap.stats.seq, country.c_str(), c.flows, c.orig_bytes,
                             c.reply_bytes, c.orig_rate, c.reply_rate);
            }
            break;
        case OutputFormat::csv:
            if (csv_header)
                std::fputs("ts,country,flows,orig_bytes,reply_bytes,orig_rate,reply_rate\n", out);
            for (const auto& c : rows)
                std::fprintf(out, "%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f,%.1f\n",
                             ts.c_str(), c.country.c_str(), c.flows, c.orig_bytes, c.reply_bytes,
                             c.orig_rate, c.reply_rate);
            break;
        case OutputFormat::table:
            std::fprintf(out, "flowtop %s  countries %zu\n", ts.c_str(), rows.size());
            std::fprintf(out, "%-8s %8s %12s %12s %14s %14s\n", "COUNTRY", "FLOWS", "ORIG BYTES",
                         "REPLY BYTES", "ORIG RATE", "REPLY RATE");
            for (const auto& c : rows)
                std::fprintf(out, "%-8s %8" PRIu64 " %12s %12s %14s %14s\n",
                             c.country.empty() ? "?" : c.country.c_str(), c.flows,
                             human_bytes(static_cast<double>(c.orig_bytes)).c_str(),
                             human_bytes(static_cast<double>(c.reply_bytes)).c_str(),
                             human_rate(c.orig_rate, bits).c_str(),
                             human_rate(c.reply_rate, bits).c_str());
            std::fputc('\n', out);
            break;
    }
    std::fflush(out);
}

}  // namespace flowtop::ui
