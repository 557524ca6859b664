#include "flowtop/ui/options.hpp"

#include <getopt.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "flowtop/detect/config.hpp"
#include "flowtop/export/flow_log.hpp"
#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/local_addresses.hpp"
#include "flowtop/util/text.hpp"

#ifndef FLOWTOP_VERSION
#define FLOWTOP_VERSION "0.0.0"
#endif

namespace flowtop::ui {
namespace {

enum LongOnly {
    opt_batch = 1000,
    opt_filter,
    opt_sort,
    opt_geoip_db,
    opt_netns,
    opt_full_sweep,
    opt_no_proc,
    opt_conf_dir,
    opt_group,
    opt_lan,
    opt_leases,
    opt_all_netns,
    opt_daemon,
    opt_prometheus,
    opt_ipfix,
    opt_ipfix_active_timeout,
    opt_log,
    opt_log_rotate,
    opt_detect,
    opt_no_detect,
    opt_allow_country,
    opt_alerts_only,
    opt_alert_exec,
    opt_alert_exec_shell,
    opt_config,
    opt_no_config,
    opt_delete_matching,
    opt_yes,
};

const option k_long_options[] = {
    {"ipv4", no_argument, nullptr, '4'},
    {"ipv6", no_argument, nullptr, '6'},
    {"tcp", no_argument, nullptr, 'T'},
    {"udp", no_argument, nullptr, 'U'},
    {"dccp", no_argument, nullptr, 'D'},
    {"icmp", no_argument, nullptr, 'I'},
    {"sctp", no_argument, nullptr, 'S'},
    {"no-dns", no_argument, nullptr, 'n'},
    {"no-geoip", no_argument, nullptr, 'G'},
    {"show-src", no_argument, nullptr, 's'},
    {"bits", no_argument, nullptr, 'b'},
    {"interval", required_argument, nullptr, 't'},
    {"count", required_argument, nullptr, 'c'},
    {"output", required_argument, nullptr, 'o'},
    {"batch", no_argument, nullptr, opt_batch},
    {"filter", required_argument, nullptr, opt_filter},
    {"sort", required_argument, nullptr, opt_sort},
    {"geoip-db", required_argument, nullptr, opt_geoip_db},
    {"netns", required_argument, nullptr, opt_netns},
    {"all-netns", no_argument, nullptr, opt_all_netns},
    {"full-sweep", required_argument, nullptr, opt_full_sweep},
    {"no-proc", no_argument, nullptr, opt_no_proc},
    {"conf-dir", required_argument, nullptr, opt_conf_dir},
    {"group", required_argument, nullptr, opt_group},
    {"lan", required_argument, nullptr, opt_lan},
    {"leases", required_argument, nullptr, opt_leases},
    {"daemon", no_argument, nullptr, opt_daemon},
    {"prometheus", required_argument, nullptr, opt_prometheus},
    {"ipfix", required_argument, nullptr, opt_ipfix},
    {"ipfix-active-timeout", required_argument, nullptr, opt_ipfix_active_timeout},
    {"log", required_argument, nullptr, opt_log},
    {"log-rotate", required_argument, nullptr, opt_log_rotate},
    {"detect", required_argument, nullptr, opt_detect},
    {"no-detect", no_argument, nullptr, opt_no_detect},
    {"allow-country", required_argument, nullptr, opt_allow_country},
    {"alerts-only", no_argument, nullptr, opt_alerts_only},
    {"alert-exec", required_argument, nullptr, opt_alert_exec},
    {"alert-exec-shell", no_argument, nullptr, opt_alert_exec_shell},
    {"config", required_argument, nullptr, opt_config},
    {"no-config", no_argument, nullptr, opt_no_config},
    {"delete-matching", required_argument, nullptr, opt_delete_matching},
    {"yes", no_argument, nullptr, opt_yes},
    {"version", no_argument, nullptr, 'v'},
    {"help", no_argument, nullptr, 'h'},
    {nullptr, 0, nullptr, 0},
};

std::chrono::milliseconds parse_interval(const char* text) {
    char* end = nullptr;
    errno = 0;
    double seconds = std::strtod(text, &end);
    if (errno || end == text || *end != '\0' || !std::isfinite(seconds) || seconds < 0.1 ||
        seconds > 3600)
        throw UsageError("invalid interval '" + quote_input(text) +
                         "': give seconds between 0.1 and 3600");
    return std::chrono::milliseconds(static_cast<long>(std::lround(seconds * 1000)));
}

long parse_count(const char* text) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || n < 1)
        throw UsageError("invalid count '" + quote_input(text) + "': give a whole number >= 1");
    return n;
}

OutputFormat parse_format(const std::string& text) {
    if (text == "table") return OutputFormat::table;
    if (text == "json") return OutputFormat::json;
    if (text == "csv") return OutputFormat::csv;
    throw UsageError("invalid output format '" + quote_input(text) + "': use table, json or csv");
}

void add_proto(Options& o, std::uint8_t p) {
    if (std::find(o.protocols.begin(), o.protocols.end(), p) == o.protocols.end())
        o.protocols.push_back(p);
}

}  // namespace

void resolve_options(Options& o) {
    if (o.all_netns && !o.netns.empty())
        throw UsageError("--netns and --all-netns exclude each other");
    if (o.daemon && (o.batch_explicit || o.count))
        throw UsageError("--daemon writes no frames: drop --batch, -o and -c");
    if (o.log_rotate_size && o.log_file.empty() && !o.log_rotate_from_config)
        throw UsageError("--log-rotate needs --log FILE");
    o.filter_expr = {};
    o.sort_key.reset();
    if (!o.filter.empty()) {
        FilterError error;
        o.filter_expr = FilterExpr::parse(o.filter, &error);
        if (!error.message.empty())
            throw UsageError("--filter: " + error.message + " (at column " +
                             std::to_string(error.column + 1) + ")");
    }
    o.delete_expr = {};
    if (o.delete_matching) {
        // An empty expression would match every flow: deleting the whole table takes saying so.
        if (o.delete_matching->find_first_not_of(" \t") == std::string::npos)
            throw UsageError(
                "--delete-matching needs an expression (to match every flow, say so: "
                "--delete-matching 'state:open or state:closed')");
        FilterError error;
        o.delete_expr = FilterExpr::parse(*o.delete_matching, &error);
        if (!error.message.empty())
            throw UsageError("--delete-matching: " + error.message + " (at column " +
                             std::to_string(error.column + 1) + ")");
        if (o.daemon || o.alerts_only)
            throw UsageError("--delete-matching runs once: drop --daemon and --alerts-only");
        if (o.all_netns)
            throw UsageError(
                "--delete-matching works on one namespace's table: use --netns NAME, not "
                "--all-netns");
    }
    if (o.yes && !o.delete_matching) throw UsageError("--yes goes with --delete-matching EXPR");
    if (!o.sort.empty()) {
        o.sort_key = parse_sort_key(o.sort);
        if (!o.sort_key) {
            std::string names;
            for (auto key : sort_keys())
                names += std::string(names.empty() ? "" : ", ") + sort_key_name(key);
            throw UsageError("unknown sort column '" + quote_input(o.sort) + "': use one of " +
                             names);
        }
    }
    if (o.only_ipv4 && o.only_ipv6) {
        // Both given means both, as in flowtop 0.6.8.
        o.only_ipv4 = o.only_ipv6 = false;
    }
}

Options parse_options(int argc, char* const argv[]) { return parse_options(argc, argv, {}); }

Options parse_options(int argc, char* const argv[], Options base) {
    Options o = std::move(base);
    // The first list item the command line gives replaces the config file's list.
    bool protos_given = false, dbs_given = false, family_given = false, lans_given = false,
         leases_given = false;
    auto proto_flag = [&] {
        if (!std::exchange(protos_given, true)) o.protocols.clear();
    };
    auto family_flag = [&] {
        if (!std::exchange(family_given, true)) o.only_ipv4 = o.only_ipv6 = false;
    };
    optind = 0;  // reset getopt so parse_options can run more than once (tests)
    opterr = 0;
    const char* short_opts = ":46TUDISnGsbt:c:o:vh";
    for (;;) {
        int index = 0;
        int c = getopt_long(argc, argv, short_opts, k_long_options, &index);
        if (c == -1) break;
        switch (c) {
            case '4':
                family_flag();
                o.only_ipv4 = true;
                break;
            case '6':
                family_flag();
                o.only_ipv6 = true;
                break;
            case 'T':
                proto_flag();
                add_proto(o, IPPROTO_TCP);
                break;
            case 'U':
                proto_flag();
                add_proto(o, IPPROTO_UDP);
                break;
            case 'D':
                proto_flag();
                add_proto(o, IPPROTO_DCCP);
                break;
            case 'I':
                proto_flag();
                add_proto(o, IPPROTO_ICMP);
                add_proto(o, IPPROTO_ICMPV6);
                break;
            case 'S':
                proto_flag();
                add_proto(o, IPPROTO_SCTP);
                break;
            case 'n':
                o.no_dns = true;
                break;
            case 'G':
                o.no_geoip = true;
                break;
            case 's':
                o.show_source = true;
                break;
            case 'b':
                o.bits = true;
                break;
            case 't':
                o.interval = parse_interval(optarg);
                break;
            case 'c':
                o.count = parse_count(optarg);
                break;
            case 'o':
                o.format = parse_format(optarg);
                o.batch = o.batch_explicit = true;
                break;
            case opt_batch:
                o.batch = o.batch_explicit = true;
                break;
            case opt_filter:
                o.filter = optarg;
                break;
            case opt_delete_matching:
                o.delete_matching = optarg;
                break;
            case opt_yes:
                o.yes = true;
                break;
            case opt_sort:
                o.sort = optarg;
                break;
            case opt_geoip_db:
                if (!std::exchange(dbs_given, true)) o.geoip_dbs.clear();
                o.geoip_dbs.emplace_back(optarg);
                break;
            case opt_conf_dir:
                if (!*optarg) throw UsageError("--conf-dir needs a directory");
                o.conf_dir = optarg;
                break;
            case opt_group:
                if (std::string_view(optarg) == "country")
                    o.group = Grouping::country;
                else if (std::string_view(optarg) == "table")
                    o.group = Grouping::table;
                else if (std::string_view(optarg) == "client")
                    o.group = Grouping::client;
                else
                    throw UsageError("unknown --group '" + quote_input(optarg) +
                                     "': use country, client or table");
                break;
            case opt_lan:
                if (!std::exchange(lans_given, true)) o.lans.clear();
                if (!parse_network(optarg))
                    throw UsageError("invalid --lan '" + quote_input(optarg) +
                                     "': give a network such as 192.0.2.0/24 or 2001:db8::/48");
                o.lans.emplace_back(optarg);
                break;
            case opt_leases:
                if (!*optarg) throw UsageError("--leases needs a file or directory");
                if (!std::exchange(leases_given, true)) o.lease_files.clear();
                o.lease_files.emplace_back(optarg);
                o.leases_given = true;
                break;
            case opt_netns:
                if (!*optarg) throw UsageError("--netns needs a namespace name");
                o.netns = optarg;
                break;
            case opt_all_netns:
                o.all_netns = true;
                break;
            case opt_full_sweep:
                o.full_sweep = parse_interval(optarg);
                break;
            case opt_no_proc:
                o.no_proc = true;
                break;
            case opt_daemon:
                o.daemon = true;
                break;
            case opt_prometheus:
                if (!*optarg) throw UsageError("--prometheus needs [ADDRESS]:PORT");
                o.prometheus = optarg;
                break;
            case opt_ipfix:
                if (!*optarg) throw UsageError("--ipfix needs HOST:PORT");
                o.ipfix = optarg;
                break;
            case opt_ipfix_active_timeout: {
                char* end = nullptr;
                errno = 0;
                const long s = std::strtol(optarg, &end, 10);
                if (errno || end == optarg || *end || s < 1 || s > 86400)
                    throw UsageError(std::string("invalid --ipfix-active-timeout '") + optarg +
                                     "': give whole seconds between 1 and 86400");
                o.ipfix_active_timeout = std::chrono::seconds(s);
                break;
            }
            case opt_log:
                if (!*optarg) throw UsageError("--log needs a file name");
                o.log_file = optarg;
                o.log_from_config = false;
                break;
            case opt_log_rotate: {
                const auto [size, count] = exporters::parse_rotate(optarg);
                o.log_rotate_size = size;
                o.log_rotate_count = count;
                o.log_rotate_from_config = false;
                break;
            }
            case opt_detect:
                if (std::string_view(optarg) == "help")
                    o.show_detect_help = true;
                else
                    o.detect_settings.emplace_back(optarg);
                break;
            case opt_no_detect:
                o.no_detect = true;
                break;
            case opt_allow_country: {
                std::string list = optarg;
                for (auto& ch : list)
                    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                o.detect_settings.push_back("country.allow=" + list);
                break;
            }
            case opt_alerts_only:
                o.alerts_only = true;
                o.batch = o.batch_explicit = true;
                break;
            case opt_alert_exec:
                if (!*optarg) throw UsageError("--alert-exec needs a command");
                o.alert_exec = optarg;
                break;
            case opt_alert_exec_shell:
                o.alert_exec_shell = true;
                break;
            case opt_config:
                if (!*optarg) throw UsageError("--config needs a file");
                o.config_file = optarg;
                break;
            case opt_no_config:
                o.no_config = true;
                break;
            case 'v':
                o.show_version = true;
                break;
            case 'h':
                o.show_help = true;
                break;
            case ':': {
                std::string name = optopt ? std::string("-") + static_cast<char>(optopt)
                                          : quote_input(argv[optind - 1]);
                throw UsageError("option " + name + " needs a value");
            }
            default: {
                std::string name = optopt ? std::string("-") + static_cast<char>(optopt)
                                          : quote_input(argv[optind - 1]);
                throw UsageError("unknown option " + name);
            }
        }
    }
    if (optind < argc) throw UsageError("unexpected argument '" + quote_input(argv[optind]) + "'");
    resolve_options(o);
    {
        detect::DetectConfig check;  // bad names and values are usage errors, now
        for (const auto& a : o.detect_settings) detect::apply_setting(check, a);
    }
    if (o.no_detect && (o.alerts_only || !o.alert_exec.empty()))
        throw UsageError("--no-detect excludes --alerts-only and --alert-exec");
    if (o.alert_exec_shell && o.alert_exec.empty())
        throw UsageError("--alert-exec-shell needs --alert-exec CMD");
    return o;
}

std::string usage_text() {
    return R"(Usage: flowtop [options]
Shows the kernel's connection tracking table live, like top: who talks to whom, over which
protocol, how many bytes and packets each way, at what rate. Needs root (CAP_NET_ADMIN).

Filters (combinable; none means all):
  -4, --ipv4            IPv4 flows only
  -6, --ipv6            IPv6 flows only
  -T, --tcp             TCP flows        -U, --udp    UDP flows
  -D, --dccp            DCCP flows       -I, --icmp   ICMP and ICMPv6 flows
  -S, --sctp            SCTP flows
      --filter EXPR     show flows matching EXPR (see flowtop(8))
      --sort COLUMN     initial sort column

Display:
  -t, --interval SEC    refresh interval in seconds (default 1; 0.1 to 3600)
  -s, --show-src        show source columns too
  -b, --bits            rates in bits/s instead of bytes/s
  -n, --no-dns          no reverse DNS lookups
  -G, --no-geoip        no GeoIP lookups
      --geoip-db PATH   mmdb file to use (repeatable); default: every *.mmdb in
                        /usr/share/GeoIP, /var/lib/GeoIP, then flowtop's data dirs
      --conf-dir DIR    look for tcp.conf/udp.conf (service names) in DIR first
      --netns NAME      watch the conntrack table of network namespace NAME (ip netns)
      --all-netns       watch every network namespace on the host (ip netns names and
                        those of running processes, new ones as they appear); each flow
                        is labelled with its namespace's name, container or unit
      --full-sweep SEC  re-read every flow at least this often (default: adapts to the
                        table size, at most 10 s; busy flows are re-read every interval)
      --no-proc         no process attribution (pid, comm, user, container of local flows)
      --lan CIDR        a LAN network (repeatable): the Clients tab's side of a flow;
                        default: the interfaces' networks (not the default route's) and
                        the private and ULA ranges
      --leases PATH     DHCP lease file or directory naming LAN clients (repeatable;
                        dnsmasq, ISC dhcpd, systemd-networkd); default: the usual places
      --config FILE     read settings from FILE only (and save them there with W / F2)
      --no-config       read no config file (default: /etc/flowtop/flowtoprc, then
                        ~/.config/flowtop/flowtoprc; the command line wins over both)

Batch mode (for scripts, like top -b):
      --batch           print frames to stdout instead of the interactive view
  -o, --output FORMAT   table, json (one object a line) or csv; implies --batch
  -c, --count N         print N frames, then exit (batch default 1)
      --group country   one row per destination country: flows, bytes and rates each way
      --group client    one row per LAN client (router: the host behind the NAT):
                        flows, bytes and rates each way, top destinations, countries
      --group table     the conntrack table's use against nf_conntrack_max, the kernel's
                        drop counters and the top consumers of entries (source, state,
                        protocol, zone, namespace)

Deleting flows (the kernel forgets their state; the hosts are not blocked):
      --delete-matching EXPR
                        list the conntrack entries of the flows EXPR matches (the filter
                        language, with --filter and -4/-6/-T... narrowing it further) and
                        exit; nothing is deleted without --yes
      --yes             with --delete-matching: delete them, printing each one deleted

Service and export (see "Fleet" in the README):
      --daemon          run headless for a service: no view and no frames on stdout, notes
                        on stderr, until SIGTERM or SIGINT; SIGHUP reloads the config
                        (detect.NAME, log, log_rotate) and reopens the log file
      --prometheus [ADDR]:PORT
                        serve Prometheus metrics on http://ADDR:PORT/metrics
                        (ADDR default 127.0.0.1)
      --ipfix HOST:PORT send IPFIX biflow records (UDP) of ended and long-lived flows
      --ipfix-active-timeout SEC
                        interim records of long-lived flows this often (default 60)
      --log FILE        append one JSON line per ended flow to FILE
      --log-rotate SIZE,COUNT
                        rotate FILE at SIZE bytes (k, M, G suffixes), keeping COUNT files
Watching for trouble (see flowtop(8) "Watching for trouble"):
      --detect NAME=VALUE  tune a detector (repeatable); --detect help lists them
      --no-detect       no detectors, no alerts
      --allow-country CC,...  countries that never alert; any other one does
      --alerts-only     batch: print alerts only (JSON lines with -o json), no frames;
                        runs until stopped unless -c is given
      --alert-exec CMD  run CMD once per new alert, the alert's JSON on its stdin
                        (words split at blanks, no shell; rate-limited, own thread)
      --alert-exec-shell  run the --alert-exec command through /bin/sh -c

  -v, --version         print the version and exit
  -h, --help            print this help and exit

While it runs, flowtop turns on net.netfilter.nf_conntrack_acct and nf_conntrack_timestamp
where they are off (in every watched namespace), and restores the values it found when it
exits.
GeoIP: the databases scripts/install-geoip fetches are "IP Geolocation by DB-IP"
(https://db-ip.com, CC-BY 4.0) and geo-whois-asn-country (CC0) from ip-location-db.
See flowtop(8) for the output schema, keys and the filter language.
)";
}

std::string version_text() { return "flowtop " FLOWTOP_VERSION "\n"; }

}  // namespace flowtop::ui
