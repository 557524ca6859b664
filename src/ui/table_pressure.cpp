#include "flowtop/ui/table_pressure.hpp"

#include <algorithm>
#include <cinttypes>
#include <map>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/flow_fields.hpp"

namespace flowtop::ui {
namespace {

// IPS_SEEN_REPLY and IPS_ASSURED of linux/netfilter/nf_conntrack_common.h.
constexpr std::uint32_t k_seen_reply = 1u << 1;
constexpr std::uint32_t k_assured = 1u << 2;

std::string counters_json(const table::FrameStats& s, bool rates) {
    std::string out = "{";
    char buf[64];
    for (std::size_t i = 0; i < ct::k_kernel_counter_count; ++i) {
        if (rates)
            std::snprintf(buf, sizeof buf, "%s\"%s\":%.1f", i ? "," : "",
                          ct::k_kernel_counter_names[i], s.ct_counter_rate[i]);
        else
            std::snprintf(buf, sizeof buf, "%s\"%s\":%" PRIu64, i ? "," : "",
                          ct::k_kernel_counter_names[i], ct::counter_at(s.ct_counters, i));
        out += buf;
    }
    return out + "}";
}

}  // namespace

std::string ct_use_text(const table::FrameStats& s) {
    if (!s.ct_known) return "ct ?";
    return "ct " + std::to_string(s.ct_count) + "/" + std::to_string(s.ct_max);
}

std::string ct_warning(const table::FrameStats& s) {
    if (!s.ct_known) return "";
    std::string out;
    if (s.ct_fullest >= k_ct_full_warning)
        out = "CT " + std::to_string(static_cast<int>(s.ct_fullest * 100)) + "% FULL";
    if (s.ct_dropping) out += out.empty() ? "CT DROPS" : " DROPS";
    return out;
}

std::string ct_json_members(const table::FrameStats& s) {
    if (!s.ct_known)
        return ",\"ct_count\":null,\"ct_max\":null,\"ct_buckets\":null,\"ct_stats\":null,"
               "\"ct_stats_rate\":null";
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  ",\"ct_count\":%" PRIu64 ",\"ct_max\":%" PRIu64 ",\"ct_buckets\":%" PRIu64,
                  s.ct_count, s.ct_max, s.ct_buckets);
    return buf + (",\"ct_stats\":" + counters_json(s, false)) +
           ",\"ct_stats_rate\":" + counters_json(s, true);
}

std::string entry_state(const table::FlowRow& row) {
    const auto& ct = row.ct;
    if (ct.proto == 6)
        if (const char* name = ct::tcp_state_name(ct.tcp_state)) return name;
    if (!ct.has_status) return "?";
    if (!(ct.status & k_seen_reply)) return "UNREPLIED";
    return (ct.status & k_assured) ? "ASSURED" : "REPLIED";
}

std::vector<Consumer> table_consumers(const table::Snapshot& snap,
                                      std::span<const table::FlowRow* const> rows,
                                      std::size_t top) {
    // Ordered maps: equal counts come out in key order, the same every frame.
    std::map<std::string, std::uint64_t> by_source, by_state, by_proto, by_zone;
    for (const auto* r : rows) {
        if (r->gone) continue;  // no longer an entry in the kernel's table
        const auto& ct = r->ct;
        ++by_source[ct.orig.src.to_string(ct.family)];
        ++by_state[entry_state(*r)];
        const char* proto = ct::proto_name(ct.proto);
        ++by_proto[proto ? proto : std::to_string(ct.proto)];
        ++by_zone[std::to_string(ct.zone)];
    }
    std::vector<Consumer> out;
    const auto add = [&](const char* by, const std::map<std::string, std::uint64_t>& counts,
                         auto filter_of) {
        std::vector<std::pair<std::string, std::uint64_t>> sorted(counts.begin(), counts.end());
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const auto& a, const auto& b) { return a.second > b.second; });
        if (sorted.size() > top) sorted.resize(top);
        for (auto& [key, n] : sorted) out.push_back({by, key, filter_of(key), n});
    };
    add("source", by_source, [](const std::string& k) { return "host:" + k; });
    add("state", by_state, [](const std::string& k) {
        // TCP counts under its state, so the status words stand for the other protocols.
        if (k == "UNREPLIED") return std::string("status:unreplied and not proto:tcp");
        if (k == "ASSURED") return std::string("status:assured and not proto:tcp");
        if (k == "REPLIED")
            return std::string("status:replied and not status:assured and not proto:tcp");
        return k == "?" ? std::string() : "state:" + k;
    });
    add("proto", by_proto, [](const std::string& k) { return "proto:" + k; });
    add("zone", by_zone, [](const std::string&) { return std::string(); });
    if (snap.table_use.size() > 1) {
        std::map<std::string, std::uint64_t> by_netns;
        for (const auto& u : snap.table_use)
            by_netns[u.label == k_no_string ? "host" : std::string(snap.str(u.label))] += u.count;
        add("netns", by_netns, [](const std::string& k) { return "netns:" + k; });
    }
    return out;
}

void write_table_frame(OutputFormat format, std::FILE* out, const table::Snapshot& snap,
                       const std::vector<Consumer>& rows, bool csv_header) {
    const auto& s = snap.stats;
    const std::string ts = rfc3339(s.time_ns);
    switch (format) {
        case OutputFormat::json:
            std::fprintf(out, "{\"type\":\"ct_table\",\"ts\":\"%s\",\"seq\":%" PRIu64 "%s}\n",
                         ts.c_str(), s.seq, ct_json_members(s).c_str());
            for (const auto& c : rows)
                std::fprintf(out,
                             "{\"type\":\"table\",\"ts\":\"%s\",\"seq\":%" PRIu64
                             ",\"by\":\"%s\",\"key\":\"%s\",\"entries\":%" PRIu64 "}\n",
                             ts.c_str(), s.seq, c.by, json_escape(c.key).c_str(), c.entries);
            break;
        case OutputFormat::csv:
            if (csv_header) std::fputs("ts,by,key,entries\n", out);
            std::fprintf(out, "%s,total,ct_count,%" PRIu64 "\n%s,total,ct_max,%" PRIu64 "\n",
                         ts.c_str(), s.ct_count, ts.c_str(), s.ct_max);
            for (const auto& c : rows)
                std::fprintf(out, "%s,%s,%s,%" PRIu64 "\n", ts.c_str(), c.by, c.key.c_str(),
                             c.entries);
            break;
        case OutputFormat::table: {
            std::string stats;
            if (s.ct_known)
                for (std::size_t i = 0; i < ct::k_kernel_counter_count; ++i) {
                    char buf[96];
                    std::snprintf(buf, sizeof buf, "  %s %" PRIu64 " (%.1f/s)",
                                  ct::k_kernel_counter_names[i], ct::counter_at(s.ct_counters, i),
                                  s.ct_counter_rate[i]);
                    stats += buf;
                }
            const std::string warning = ct_warning(s);
            std::fprintf(out, "flowtop %s  %s  buckets %" PRIu64 "%s%s\n%s\n", ts.c_str(),
                         ct_use_text(s).c_str(), s.ct_buckets, warning.empty() ? "" : "  ",
                         warning.c_str(), stats.empty() ? "" : stats.substr(2).c_str());
            std::fprintf(out, "%-8s %-40s %8s\n", "BY", "CONSUMER", "ENTRIES");
            for (const auto& c : rows)
                std::fprintf(out, "%-8s %-40s %8" PRIu64 "\n", c.by, c.key.c_str(), c.entries);
            std::fputc('\n', out);
            break;
        }
    }
    std::fflush(out);
}

}  // namespace flowtop::ui
