#pragma once
// The command line: flowtop 0.6.8's flags, then flowtop's own long options.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/sort_key.hpp"

namespace flowtop::ui {

enum class OutputFormat { table, json, csv };
// --group: batch rows per flow, per country, per LAN client, or the conntrack table's consumers
enum class Grouping { none, country, table, client };

struct Options {
    // Families and protocols to show; empty means all.
    bool only_ipv4 = false;
    bool only_ipv6 = false;
    std::vector<std::uint8_t> protocols;       // IPPROTO_* values, from -T -U -D -I -S
    bool no_dns = false;                       // -n
    bool no_geoip = false;                     // -G
    bool no_proc = false;                      // --no-proc: no process attribution
    bool show_source = false;                  // -s
    bool bits = false;                         // -b
    std::chrono::milliseconds interval{1000};  // -t
    bool batch = false;
    bool batch_explicit = false;  // --batch or -o given (vs. chosen because stdout is no tty)
    std::optional<long> count;    // -c; batch default 1, interactive default unlimited
    OutputFormat format = OutputFormat::table;
    std::string filter;               // --filter as given; filter_expr is what it parsed to
    std::string sort;                 // --sort as given; sort_key is what it names
    FilterExpr filter_expr;           // empty: every flow
    std::optional<SortKey> sort_key;  // unset: each view's default order
    std::vector<std::string> geoip_dbs;
    std::string netns;
    bool all_netns = false;                   // --all-netns: every network namespace on the host
    std::chrono::milliseconds full_sweep{0};  // --full-sweep: fixed gap between full dumps
    std::string conf_dir;
    Grouping group = Grouping::none;  // --conf-dir: searched first for tcp.conf/udp.conf
    // LAN clients (README "On a router"): --lan CIDR says the LAN explicitly (default: the
    // interfaces' networks and the private ranges); --leases PATH names the DHCP lease files
    // (default: enrich::default_lease_paths()). Both repeatable, and flowtoprc keys.
    std::vector<std::string> lans;
    std::vector<std::string> lease_files;
    bool leases_given = false;  // --leases or the leases key: only those files
    // Service mode and exporters (README "Fleet").
    bool daemon = false;                            // --daemon: no view, no frames; until SIGTERM
    std::string prometheus;                         // --prometheus [ADDR]:PORT
    std::string ipfix;                              // --ipfix HOST:PORT (UDP)
    std::chrono::seconds ipfix_active_timeout{60};  // --ipfix-active-timeout SEC
    std::string log_file;                           // --log FILE
    bool log_from_config = false;                   // log_file is a flowtoprc's (--daemon only)
    std::uint64_t log_rotate_size = 0;              // --log-rotate SIZE,COUNT (0: no rotation)
    unsigned log_rotate_count = 0;
    bool log_rotate_from_config = false;  // flowtoprc log_rotate: no --log is no error
    bool show_version = false;
    bool show_help = false;
    // Detectors (flowtop/detect): settings by name, in the order given (already validated).
    bool no_detect = false;                    // --no-detect
    std::vector<std::string> detect_settings;  // --detect NAME=VALUE, --allow-country
    bool show_detect_help = false;             // --detect help
    bool alerts_only = false;                  // --alerts-only: batch prints alerts, no frames
    std::string alert_exec;                    // --alert-exec CMD
    // --delete-matching EXPR: delete the conntrack entries of the flows EXPR (the filter
    // language) matches, once, then exit; a dry run (printing them) unless --yes.
    std::optional<std::string> delete_matching;
    FilterExpr delete_expr;         // what delete_matching parsed to
    bool yes = false;               // --yes: really delete
    bool alert_exec_shell = false;  // --alert-exec-shell

    // Settings of the live view that a config file (flowtoprc) or a key sets; the command
    // line has no flag for them.
    bool reverse = false;                        // sort order reversed (key r)
    std::string rate_window = "tick";            // tick, 2s, 10s, 40s (keys w, 1, 2, 3)
    bool totals = false;                         // cumulative bytes instead of rates (keys c, m)
    bool bars = false;                           // rate bars (key B)
    bool log_bars = false;                       // log scale of the bars (key L)
    bool active_only = false;                    // flows with traffic in the window only (key a)
    bool port_numbers = false;                   // ports as numbers, not service names (key N)
    bool color = true;                           // colours (NO_COLOR in the environment still wins)
    std::vector<std::uint8_t> hidden_protocols;  // hidden in the live view (keys T U D I S)
    std::vector<std::string> hidden_columns;     // flowtoprc hide_columns: state, age, ...
    std::string config_file;                     // --config: the only file read, and saved to
    bool no_config = false;                      // --no-config: read no file
};

// As parse_options(argc, argv), but starting from `base` (the config files' settings): a flag
// overrides the value it sets; a list the command line gives (protocols, --geoip-db, -4/-6)
// replaces the file's list instead of adding to it.
Options parse_options(int argc, char* const argv[], Options base);

// Throws UsageError with a one-line message for unknown flags or bad values. Every value is
// parsed here, once, into its typed field (filter_expr, sort_key): the views only read them.
Options parse_options(int argc, char* const argv[]);
// The checks and typed parsing parse_options ends with: the text values (filter, sort) into
// filter_expr and sort_key, and the combinations that exclude each other. Anything else that
// fills Options (a config file) calls it too. Throws UsageError.
void resolve_options(Options& o);
std::string usage_text();
std::string version_text();

}  // namespace flowtop::ui
