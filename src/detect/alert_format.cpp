#include "flowtop/detect/alert_format.hpp"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "flowtop/util/text.hpp"

namespace flowtop::detect {
namespace {

std::string quoted(std::string_view s) { return '"' + json_escape(s) + '"'; }
std::string or_null(const std::string& s) { return s.empty() ? "null" : quoted(s); }

std::string rfc3339(std::uint64_t ns) {
    const time_t secs = static_cast<time_t>(ns / 1'000'000'000ull);
    tm utc{};
    gmtime_r(&secs, &utc);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03uZ", buf,
                  static_cast<unsigned>((ns / 1'000'000ull) % 1000));
    return out;
}

// CSV: quote when needed; a leading = + - @ is defused so a spreadsheet never runs it.
std::string csv(std::string_view s) {
    std::string v(s);
    if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')) v = "'" + v;
    for (auto& ch : v)
        if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    return csv_quote(v);
}

// Terminal text: control characters from the network must not reach the terminal.
std::string printable(std::string_view s) {
    std::string v(s);
    for (auto& ch : v)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
    return v;
}

}  // namespace

std::string alert_json(const table::Alert& a, bool is_new) {
    std::string out =
        "{\"type\":\"alert\",\"id\":" + std::to_string(a.id) + ",\"state\":\"" +
        (is_new ? "new" : "update") + "\",\"kind\":\"" + table::alert_kind_name(a.kind) +
        "\",\"severity\":\"" + table::severity_name(a.severity) + "\",\"first\":\"" +
        rfc3339(a.first_ns) + "\",\"last\":\"" + rfc3339(a.last_ns) +
        "\",\"count\":" + std::to_string(a.count) + ",\"distinct\":" + std::to_string(a.distinct) +
        ",\"bytes\":" + std::to_string(a.bytes) + ",\"family\":\"" +
        (a.family == Family::ipv6 ? "ipv6" : "ipv4") + "\",\"proto\":";
    const char* proto = a.proto ? ct::proto_name(a.proto) : nullptr;
    out += proto ? quoted(proto) : "null";
    out += ",\"src\":" + or_null(a.src) + ",\"dsts\":[";
    for (std::size_t i = 0; i < a.dsts.size(); ++i) out += (i ? "," : "") + quoted(a.dsts[i]);
    out += "],\"ports\":[";
    for (std::size_t i = 0; i < a.ports.size(); ++i)
        out += (i ? "," : "") + std::to_string(a.ports[i]);
    out += "],\"process\":" + or_null(a.process) +
           ",\"pid\":" + (a.pid ? std::to_string(a.pid) : "null") + ",\"user\":" + or_null(a.user) +
           ",\"container\":" + or_null(a.container) + ",\"netns\":" + or_null(a.netns) +
           ",\"country\":" + or_null(a.country) + ",\"message\":" + quoted(a.message) + "}";
    return out;
}

const char* alert_csv_header() {
    return "alert_id,alert_state,alert_kind,severity,first,last,count,distinct,bytes,src,dsts,"
           "ports,process,pid,user,container,netns,country,message";
}

std::string alert_csv(const table::Alert& a, bool is_new) {
    std::string dsts, ports;
    for (const auto& d : a.dsts) dsts += (dsts.empty() ? "" : " ") + d;
    for (auto p : a.ports) ports += (ports.empty() ? "" : " ") + std::to_string(p);
    return std::to_string(a.id) + "," + (is_new ? "new" : "update") + "," +
           table::alert_kind_name(a.kind) + "," + table::severity_name(a.severity) + "," +
           rfc3339(a.first_ns) + "," + rfc3339(a.last_ns) + "," + std::to_string(a.count) + "," +
           std::to_string(a.distinct) + "," + std::to_string(a.bytes) + "," + csv(a.src) + "," +
           csv(dsts) + "," + csv(ports) + "," + csv(a.process) + "," +
           (a.pid ? std::to_string(a.pid) : "") + "," + csv(a.user) + "," + csv(a.container) + "," +
           csv(a.netns) + "," + csv(a.country) + "," + csv(a.message);
}

std::string alert_line(const table::Alert& a, bool is_new) {
    char head[160];
    std::snprintf(head, sizeof head, "ALERT #%" PRIu64 " %s %s %s%s: ", a.id,
                  table::severity_name(a.severity), table::alert_kind_name(a.kind),
                  rfc3339(a.last_ns).c_str(), is_new ? "" : " (update)");
    std::string line = head + printable(a.message);
    if (a.count > 1) line += " [" + std::to_string(a.count) + " flows]";
    return line;
}

}  // namespace flowtop::detect
