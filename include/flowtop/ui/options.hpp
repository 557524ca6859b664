#pragma once
// The command line: flowtop 0.6.8's flags, then flowtop's own long options.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowtop::ui {

enum class OutputFormat { table, json, csv };
enum class Grouping { none, country };  // --group: batch rows per flow or per country

struct Options {
    // Families and protocols to show; empty means all.
    bool only_ipv4 = false;
    bool only_ipv6 = false;
    std::vector<std::uint8_t> protocols;  // IPPROTO_* values, from -T -U -D -I -S
    bool no_dns = false;                  // -n
    bool no_geoip = false;                // -G
    bool no_proc = false;                 // --no-proc: no process attribution
    bool show_source = false;             // -s
    bool bits = false;                    // -b
    std::chrono::milliseconds interval{1000};  // -t
    bool batch = false;
    bool batch_explicit = false;  // --batch or -o given (vs. chosen because stdout is no tty)
    std::optional<long> count;    // -c; batch default 1, interactive default unlimited
    OutputFormat format = OutputFormat::table;
    std::string filter;
    std::string sort;
    std::vector<std::string> geoip_dbs;
    std::string netns;
    bool all_netns = false;  // --all-netns: every network namespace on the host
    std::chrono::milliseconds full_sweep{0};  // --full-sweep: fixed gap between full dumps
    std::string conf_dir;
    Grouping group = Grouping::none;  // --conf-dir: searched first for tcp.conf/udp.conf
    bool show_version = false;
    bool show_help = false;
};

// Throws UsageError with a one-line message for unknown flags or bad values.
Options parse_options(int argc, char* const argv[]);
std::string usage_text();
std::string version_text();

}  // namespace flowtop::ui
