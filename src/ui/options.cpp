#include "flowtop/ui/options.hpp"

#include <getopt.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/view_model.hpp"
#include "flowtop/util/error.hpp"

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
    opt_all_netns,
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
        throw UsageError(std::string("invalid interval '") + text +
                         "': give seconds between 0.1 and 3600");
    return std::chrono::milliseconds(static_cast<long>(std::lround(seconds * 1000)));
}

long parse_count(const char* text) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || n < 1)
        throw UsageError(std::string("invalid count '") + text + "': give a whole number >= 1");
    return n;
}

OutputFormat parse_format(const std::string& text) {
    if (text == "table") return OutputFormat::table;
    if (text == "json") return OutputFormat::json;
    if (text == "csv") return OutputFormat::csv;
    throw UsageError("invalid output format '" + text + "': use table, json or csv");
}

void add_proto(Options& o, std::uint8_t p) {
    if (std::find(o.protocols.begin(), o.protocols.end(), p) == o.protocols.end())
        o.protocols.push_back(p);
}

}  // namespace

Options parse_options(int argc, char* const argv[]) {
    Options o;
    optind = 0;  // reset getopt so parse_options can run more than once (tests)
    opterr = 0;
    const char* short_opts = ":46TUDISnGsbt:c:o:vh";
    for (;;) {
        int index = 0;
        int c = getopt_long(argc, argv, short_opts, k_long_options, &index);
        if (c == -1) break;
        switch (c) {
            case '4': o.only_ipv4 = true; break;
            case '6': o.only_ipv6 = true; break;
            case 'T': add_proto(o, IPPROTO_TCP); break;
            case 'U': add_proto(o, IPPROTO_UDP); break;
            case 'D': add_proto(o, IPPROTO_DCCP); break;
            case 'I':
                add_proto(o, IPPROTO_ICMP);
                add_proto(o, IPPROTO_ICMPV6);
                break;
            case 'S': add_proto(o, IPPROTO_SCTP); break;
            case 'n': o.no_dns = true; break;
            case 'G': o.no_geoip = true; break;
            case 's': o.show_source = true; break;
            case 'b': o.bits = true; break;
            case 't': o.interval = parse_interval(optarg); break;
            case 'c': o.count = parse_count(optarg); break;
            case 'o':
                o.format = parse_format(optarg);
                o.batch = o.batch_explicit = true;
                break;
            case opt_batch: o.batch = o.batch_explicit = true; break;
            case opt_filter: o.filter = optarg; break;
            case opt_sort: o.sort = optarg; break;
            case opt_geoip_db: o.geoip_dbs.emplace_back(optarg); break;
            case opt_conf_dir:
                if (!*optarg) throw UsageError("--conf-dir needs a directory");
                o.conf_dir = optarg;
                break;
            case opt_group:
                if (std::string_view(optarg) != "country")
                    throw UsageError(std::string("unknown --group '") + optarg +
                                     "': only 'country' is supported");
                o.group = Grouping::country;
                break;
            case opt_netns:
                if (!*optarg) throw UsageError("--netns needs a namespace name");
                o.netns = optarg;
                break;
            case opt_all_netns: o.all_netns = true; break;
            case opt_full_sweep: o.full_sweep = parse_interval(optarg); break;
            case opt_no_proc: o.no_proc = true; break;
            case 'v': o.show_version = true; break;
            case 'h': o.show_help = true; break;
            case ':': {
                std::string name = optopt ? std::string("-") + static_cast<char>(optopt)
                                          : std::string(argv[optind - 1]);
                throw UsageError("option " + name + " needs a value");
            }
            default: {
                std::string name = optopt ? std::string("-") + static_cast<char>(optopt)
                                          : std::string(argv[optind - 1]);
                throw UsageError("unknown option " + name);
            }
        }
    }
    if (optind < argc)
        throw UsageError(std::string("unexpected argument '") + argv[optind] + "'");
    if (o.all_netns && !o.netns.empty())
        throw UsageError("--netns and --all-netns exclude each other");
    if (!o.filter.empty()) {
        FilterError error;
        FilterExpr::parse(o.filter, &error);
        if (!error.message.empty())
            throw UsageError("--filter: " + error.message + " (at column " +
                             std::to_string(error.column + 1) + ")");
    }
    if (!o.sort.empty() && !parse_sort_key(o.sort)) {
        std::string names;
        for (auto key : sort_keys()) names += std::string(names.empty() ? "" : ", ") + sort_key_name(key);
        throw UsageError("unknown sort column '" + o.sort + "': use one of " + names);
    }
    if (o.only_ipv4 && o.only_ipv6) {
        // Both given means both, as in flowtop 0.6.8.
        o.only_ipv4 = o.only_ipv6 = false;
    }
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

Batch mode (for scripts, like top -b):
      --batch           print frames to stdout instead of the interactive view
  -o, --output FORMAT   table, json (one object a line) or csv; implies --batch
  -c, --count N         print N frames, then exit (batch default 1)
      --group country   one row per destination country: flows, bytes and rates each way

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
