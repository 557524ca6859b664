#include "flowtop/detect/config.hpp"

#include <charconv>
#include <limits>

#include "flowtop/util/error.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::detect {
namespace {

[[noreturn]] void bad(std::string_view name, std::string_view value, const char* want) {
    throw UsageError("--detect " + std::string(name) + ": invalid value '" + quote_input(value) +
                     "': " + want);
}

std::uint64_t number(std::string_view name, std::string_view text, std::string_view& suffix) {
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data()) bad(name, text, "give a whole number");
    suffix = text.substr(static_cast<std::size_t>(end - text.data()));
    return n;
}

bool parse_bool(std::string_view name, std::string_view v) {
    if (v == "on" || v == "1" || v == "yes" || v == "true") return true;
    if (v == "off" || v == "0" || v == "no" || v == "false") return false;
    bad(name, v, "use on or off");
}

std::uint32_t parse_count(std::string_view name, std::string_view v) {
    std::string_view rest;
    const auto n = number(name, v, rest);
    if (!rest.empty() || n < 1 || n > std::numeric_limits<std::uint32_t>::max())
        bad(name, v, "give a whole number >= 1");
    return static_cast<std::uint32_t>(n);
}

std::chrono::seconds parse_seconds(std::string_view name, std::string_view v) {
    std::string_view unit;
    auto n = number(name, v, unit);
    std::uint64_t scale = 1;
    if (unit == "m")
        scale = 60;
    else if (unit == "h")
        scale = 3600;
    else if (unit == "d")
        scale = 86400;
    else if (!unit.empty() && unit != "s")
        bad(name, v, "give seconds, optionally with s, m, h or d");
    if (n > (1ull << 32) / scale) bad(name, v, "too long");
    return std::chrono::seconds(static_cast<long>(n * scale));
}

std::uint64_t parse_bytes(std::string_view name, std::string_view v) {
    std::string_view unit;
    auto n = number(name, v, unit);
    int shift = 0;
    if (unit == "k" || unit == "K")
        shift = 10;
    else if (unit == "M")
        shift = 20;
    else if (unit == "G")
        shift = 30;
    else if (unit == "T")
        shift = 40;
    else if (!unit.empty())
        bad(name, v, "give bytes, optionally with K, M, G or T (powers of 1024)");
    if (n == 0 || n > (std::numeric_limits<std::uint64_t>::max() >> shift))
        bad(name, v, "give a byte count >= 1");
    return n << shift;
}

std::vector<std::string> parse_list(std::string_view v) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at <= v.size()) {
        auto comma = v.find(',', at);
        if (comma == std::string_view::npos) comma = v.size();
        auto item = v.substr(at, comma - at);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        at = comma + 1;
    }
    return out;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
    return out;
}

std::string secs(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }
std::string onoff(bool b) { return b ? "on" : "off"; }

std::string bytes_text(std::uint64_t b) {
    for (auto [shift, unit] : {std::pair{30, "G"}, {20, "M"}, {10, "K"}})
        if (b >= (1ull << shift) && b % (1ull << shift) == 0)
            return std::to_string(b >> shift) + unit;
    return std::to_string(b);
}

// One table entry per setting; the macros keep name, getter and setter on one line each.
#define FT_BOOL(key, field, text)                                                           \
    Setting {                                                                               \
        key, [](const DetectConfig& c) { return onoff(c.field); },                          \
            [](DetectConfig& c, std::string_view v) { c.field = parse_bool(key, v); }, text \
    }
#define FT_COUNT(key, field, text)                                                           \
    Setting {                                                                                \
        key, [](const DetectConfig& c) { return std::to_string(c.field); },                  \
            [](DetectConfig& c, std::string_view v) { c.field = parse_count(key, v); }, text \
    }
#define FT_SECS(key, field, text)                                                              \
    Setting {                                                                                  \
        key, [](const DetectConfig& c) { return secs(c.field); },                              \
            [](DetectConfig& c, std::string_view v) { c.field = parse_seconds(key, v); }, text \
    }
#define FT_LIST(key, field, text)                                                      \
    Setting {                                                                          \
        key, [](const DetectConfig& c) { return join(c.field); },                      \
            [](DetectConfig& c, std::string_view v) { c.field = parse_list(v); }, text \
    }

}  // namespace

const std::vector<Setting>& settings() {
    static const std::vector<Setting> table = {
        FT_BOOL("scan", scan, "port scan / host sweep detector"),
        FT_COUNT("scan.ports", scan_ports, "distinct ports of one host probed by one source"),
        FT_COUNT("scan.hosts", scan_hosts, "distinct hosts probed on one port by one source"),
        FT_SECS("scan.window", scan_window, "sliding window of the scan counts"),
        FT_BOOL("flood", flood, "SYN flood / DDoS against a local port"),
        FT_COUNT("flood.sources", flood_sources,
                 "distinct sources with half-open or unreplied flows to one local port"),
        FT_SECS("flood.window", flood_window, "sliding window of the flood count"),
        FT_BOOL("fanout", fanout, "DDoS participation: one local source, many flows out"),
        FT_COUNT("fanout.flows", fanout_flows, "new flows from one local source to one host:port"),
        FT_SECS("fanout.window", fanout_window, "window of the fan-out counts"),
        FT_COUNT("fanout.jump", fanout_jump, "new flows of one local source in a window..."),
        FT_COUNT("fanout.jump_factor", fanout_jump_factor, "...and this many times the last one"),
        FT_BOOL("exfil", exfil, "large outbound transfers (exfiltration)"),
        Setting{"exfil.bytes", [](const DetectConfig& c) { return bytes_text(c.exfil_bytes); },
                [](DetectConfig& c, std::string_view v) {
                    c.exfil_bytes = parse_bytes("exfil.bytes", v);
                },
                "bytes sent out by one local host or process within the window"},
        FT_SECS("exfil.window", exfil_window, "sliding window of the byte count"),
        FT_LIST(
            "exfil.allow", exfil_allow,
            "destinations that never alert: CIDR, country code or process name, comma-separated"),
        FT_BOOL("country", country, "first contact with a country"),
        FT_SECS("country.learn", country_learn, "learning period: countries seen are known"),
        FT_LIST("country.allow", allow_country,
                "countries that never alert; when set, every other one does (--allow-country)"),
        FT_BOOL("service", service, "new listening service"),
        FT_SECS("service.learn", service_learn, "learning period: ports accepted are known"),
        FT_LIST("service.allow", service_allow, "ports that never alert, e.g. 8080,53/udp"),
        FT_BOOL("long", long_lived, "long-lived flows (low severity)"),
        FT_SECS("long.after", long_after, "age from which a flow is long-lived"),
        FT_BOOL("oddport", odd_port, "well-known programs on ports not their own (low severity)"),
        FT_SECS("fold", fold, "repeats of an alert within this long fold into it"),
        FT_COUNT("max_tracked", max_tracked,
                 "sources, ports or keys each detector tracks (oldest evicted)"),
        FT_COUNT("max_alerts", max_alerts, "alerts kept (oldest dropped)"),
    };
    return table;
}

void apply_setting(DetectConfig& config, std::string_view assignment) {
    const auto eq = assignment.find('=');
    if (eq == std::string_view::npos)
        throw UsageError("--detect '" + quote_input(assignment) +
                         "': give NAME=VALUE (see --detect help)");
    const auto name = assignment.substr(0, eq);
    for (const auto& s : settings()) {
        if (name != s.name) continue;
        s.set(config, assignment.substr(eq + 1));
        return;
    }
    throw UsageError("--detect: unknown setting '" + quote_input(name) +
                     "' (flowtop --detect help lists them)");
}

std::string describe(const DetectConfig& config) {
    std::string out;
    for (const auto& s : settings()) {
        std::string line = std::string(s.name) + "=" + s.get(config);
        if (line.size() < 28) line.resize(28, ' ');
        out += line + "  " + s.help + "\n";
    }
    return out;
}

}  // namespace flowtop::detect
