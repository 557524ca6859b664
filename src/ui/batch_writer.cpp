#include "flowtop/ui/batch_writer.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/table_pressure.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::ui {
namespace {

std::string format_number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

// One value as JSON text.
std::string json_value(const FieldValue& v) {
    struct Visitor {
        std::string operator()(Null) const { return "null"; }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(std::int64_t n) const { return std::to_string(n); }
        std::string operator()(std::uint64_t n) const { return std::to_string(n); }
        std::string operator()(double d) const { return format_number(d); }
        // Strings come sanitized from the pool; checked again here, on the way out, so no
        // control character or invalid UTF-8 from others can reach a reader through a writer.
        std::string operator()(const std::string& s) const {
            return '"' + json_escape(is_clean(s) ? s : sanitize(s)) + '"';
        }
    };
    return std::visit(Visitor{}, v);
}

std::string csv_value(const FieldValue& v) {
    struct Visitor {
        std::string operator()(Null) const { return ""; }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(std::int64_t n) const { return std::to_string(n); }
        std::string operator()(std::uint64_t n) const { return std::to_string(n); }
        std::string operator()(double d) const { return format_number(d); }
        std::string operator()(const std::string& raw) const {
            return csv_quote(is_clean(raw) ? raw : sanitize(raw));
        }
    };
    return std::visit(Visitor{}, v);
}

struct Totals {
    std::uint64_t orig_bytes = 0, reply_bytes = 0;
    double orig_rate = 0, reply_rate = 0;
};

Totals totals_of(std::span<const table::FlowRow* const> rows) {
    Totals t;
    for (const auto* r : rows) {
        if (!r->has_counters()) continue;
        t.orig_bytes += r->ct.orig_counters.bytes;
        t.reply_bytes += r->ct.reply_counters.bytes;
        if (r->rate_known) {
            t.orig_rate += r->orig_rate;
            t.reply_rate += r->reply_rate;
        }
    }
    return t;
}

class JsonWriter final : public BatchWriter {
  public:
    explicit JsonWriter(std::FILE* out) : out_(out) {}

    void write_frame(const table::Snapshot& snap,
                     std::span<const table::FlowRow* const> rows) override {
        const auto& s = snap.stats;
        const Totals t = totals_of(rows);
        std::fprintf(
            out_,
            "{\"type\":\"frame\",\"ts\":\"%s\",\"seq\":%" PRIu64
            ",\"interval_s\":%.3f,\"flows\":%zu,\"orig_bytes\":%" PRIu64 ",\"reply_bytes\":%" PRIu64
            ",\"orig_rate\":%.1f,\"reply_rate\":%.1f,\"events\":%" PRIu64
            ",\"lost_events\":%" PRIu64 ",\"resyncs\":%" PRIu64
            ",\"sweep_interval_s\":%.1f,\"acct\":%s,\"timestamp\":%s"
            ",\"namespaces\":%u,\"offloaded_flows\":%" PRIu64 "%s}\n",
            rfc3339(s.time_ns).c_str(), s.seq, s.interval_s, rows.size(), t.orig_bytes,
            t.reply_bytes, t.orig_rate, t.reply_rate, s.events, s.lost_events, s.resyncs,
            s.sweep_interval_s, s.acct_on ? "true" : "false", s.timestamp_on ? "true" : "false",
            s.sources, s.offloaded_flows, ct_json_members(s).c_str());
        std::string line;
        for (const auto* row : rows) {
            line = flow_json(snap, *row, {}, fields_);
            line += '\n';
            std::fputs(line.c_str(), out_);
        }
        std::fflush(out_);
    }

  private:
    std::FILE* out_;
    std::vector<Field> fields_;
};

class CsvWriter final : public BatchWriter {
  public:
    explicit CsvWriter(std::FILE* out) : out_(out) {}

    void write_frame(const table::Snapshot& snap,
                     std::span<const table::FlowRow* const> rows) override {
        if (!header_written_) {
            std::string header;
            for (const char* key : flow_field_keys()) {
                if (!header.empty()) header += ',';
                header += key;
            }
            std::fprintf(out_, "%s\n", header.c_str());
            header_written_ = true;
        }
        std::string line;
        for (const auto* row : rows) {
            flow_fields(snap, *row, fields_);
            line.clear();
            for (const auto& f : fields_) {
                if (!line.empty() || &f != &fields_.front()) line += ',';
                line += csv_value(f.value);
            }
            line += '\n';
            std::fputs(line.c_str(), out_);
        }
        std::fflush(out_);
    }

  private:
    std::FILE* out_;
    std::vector<Field> fields_;
    bool header_written_ = false;
};

class TableWriter final : public BatchWriter {
  public:
    TableWriter(std::FILE* out, WriterConfig config) : out_(out), config_(config) {}

    void write_frame(const table::Snapshot& snap,
                     std::span<const table::FlowRow* const> rows) override {
        const auto& s = snap.stats;
        const Totals t = totals_of(rows);
        if (s.seq > 1 || frames_ > 0) std::fputc('\n', out_);
        ++frames_;
        std::fprintf(
            out_,
            "flowtop %s  flows %zu  out %s (%s)  in %s (%s)  events %" PRIu64 "  lost %" PRIu64
            "  resyncs %" PRIu64 "  %s%s%s%s%s%s\n",
            rfc3339(s.time_ns).c_str(), rows.size(), human_rate(t.orig_rate, config_.bits).c_str(),
            human_bytes(static_cast<double>(t.orig_bytes)).c_str(),
            human_rate(t.reply_rate, config_.bits).c_str(),
            human_bytes(static_cast<double>(t.reply_bytes)).c_str(), s.events, s.lost_events,
            s.resyncs, ct_use_text(s).c_str(), ct_warning(s).empty() ? "" : "  ",
            ct_warning(s).c_str(), s.acct_on ? "" : "  [no byte accounting]",
            s.timestamp_on ? "" : "  [no timestamps]",
            s.offloaded_flows
                ? ("  [" + std::to_string(s.offloaded_flows) + " offloaded: counters may be stale]")
                      .c_str()
                : "");

        std::vector<std::vector<std::string>> cells;
        cells.push_back({"PROTO", "STATE", "SOURCE", "DESTINATION", "NAT", "ORIG BYTES",
                         "ORIG PKTS", "ORIG RATE", "REPLY BYTES", "REPLY PKTS", "REPLY RATE",
                         "AGE"});
        for (const auto* row : rows) cells.push_back(format_row(snap, *row));

        std::vector<std::size_t> width(cells.front().size(), 0);
        for (const auto& line : cells)
            for (std::size_t i = 0; i < line.size(); ++i)
                width[i] = std::max(width[i], line[i].size());
        std::string text;
        for (const auto& line : cells) {
            text.clear();
            for (std::size_t i = 0; i < line.size(); ++i) {
                const bool numeric = i >= 5 && i <= 11;
                std::string pad(width[i] - line[i].size(), ' ');
                if (i) text += "  ";
                text += numeric ? pad + line[i] : line[i] + (i + 1 < line.size() ? pad : "");
            }
            while (!text.empty() && text.back() == ' ') text.pop_back();
            std::fprintf(out_, "%s\n", text.c_str());
        }
        std::fflush(out_);
    }

  private:
    std::vector<std::string> format_row(const table::Snapshot& snap, const table::FlowRow& r) {
        const auto& ct = r.ct;
        const auto endpoint = [&](const Addr& a, std::uint16_t p) {
            std::string host = a.to_string(ct.family);
            if (ct.proto == 1 || ct.proto == 58) return host;
            if (ct.family == Family::ipv6) host = "[" + host + "]";
            return host + ":" + std::to_string(p);
        };
        const char* proto = ct::proto_name(ct.proto);
        const char* state = ct.proto == 6 ? ct::tcp_state_name(ct.tcp_state) : nullptr;
        std::string state_text = state ? state : "-";
        // A flowtable carries its packets: the counters may be stale.
        if (ct::offloaded(ct)) state_text += " (offloaded)";
        if (r.gone)
            state_text += " (gone)";
        else if (r.closed && !state)
            state_text = "CLOSED";
        // The translation from the tuples (they tell even when an event left the status out):
        // a DNAT's reply comes from the internal target ("to"), a masqueraded flow's reply goes
        // back to the post-NAT source, the router's WAN address and port ("via"). ASCII, so the
        // columns' widths in bytes are their widths on screen.
        std::string nat;
        if (!(ct.reply.src == ct.orig.dst && ct.reply.sport == ct.orig.dport))
            nat = "to " + endpoint(ct.reply.src, ct.reply.sport);
        if (!(ct.reply.dst == ct.orig.src && ct.reply.dport == ct.orig.sport))
            nat += (nat.empty() ? "via " : " via ") + endpoint(ct.reply.dst, ct.reply.dport);
        if (nat.empty()) nat = "-";
        const auto count = [&](std::uint64_t v, bool bytes) {
            if (!r.has_counters()) return std::string("?");
            return bytes ? human_bytes(static_cast<double>(v)) : std::to_string(v);
        };
        const auto rate = [&](double v) {
            if (!r.has_counters() || !r.rate_known) return std::string("?");
            return human_rate(v, config_.bits);
        };
        char age[32];
        std::snprintf(age, sizeof age, "%.0fs", r.age_s(snap.stats.time_ns));
        return {proto ? proto : std::to_string(ct.proto),
                state_text,
                endpoint(ct.orig.src, ct.orig.sport),
                endpoint(ct.orig.dst, ct.orig.dport),
                nat,
                count(ct.orig_counters.bytes, true),
                count(ct.orig_counters.packets, false),
                rate(r.orig_rate),
                count(ct.reply_counters.bytes, true),
                count(ct.reply_counters.packets, false),
                rate(r.reply_rate),
                age};
    }

    std::FILE* out_;
    WriterConfig config_;
    std::uint64_t frames_ = 0;
};

}  // namespace

std::string flow_json(const table::Snapshot& snap, const table::FlowRow& row,
                      std::string_view extra, std::vector<Field>& scratch) {
    flow_fields(snap, row, scratch);
    std::string line = "{\"type\":\"flow\"";
    for (const auto& f : scratch) {
        line += ",\"";
        line += f.key;
        line += "\":";
        line += json_value(f.value);
    }
    line += extra;
    line += '}';
    return line;
}

std::unique_ptr<BatchWriter> make_batch_writer(OutputFormat format, std::FILE* out,
                                               WriterConfig config) {
    switch (format) {
        case OutputFormat::json:
            return std::make_unique<JsonWriter>(out);
        case OutputFormat::csv:
            return std::make_unique<CsvWriter>(out);
        case OutputFormat::table:
            break;
    }
    return std::make_unique<TableWriter>(out, config);
}

}  // namespace flowtop::ui
