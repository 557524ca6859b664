#include "flowtop/ui/client_groups.hpp"

#include <algorithm>
#include <cinttypes>
#include <map>
#include <unordered_map>

#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::ui {

const Addr* lan_client_addr(const LocalAddresses& local, const ct::FlowRecord& ct) {
    switch (local.lan_client(ct.family, ct.orig.src, ct.orig.dst, ct.reply.src, ct.reply.dst)) {
        case LanEnd::orig_src:
            return &ct.orig.src;
        case LanEnd::reply_src:
            return &ct.reply.src;
        case LanEnd::none:
            break;
    }
    return nullptr;
}

namespace {

// FNV-1a over an address (and a string id): hash maps, since a busy router has 100k flows
// a frame and a refresh walks them all.
struct AddrHash {
    std::size_t operator()(const Addr& a) const noexcept {
        std::uint64_t h = 1469598103934665603ull;
        for (auto b : a.bytes) h = (h ^ b) * 1099511628211ull;
        return static_cast<std::size_t>(h);
    }
    std::size_t operator()(const std::pair<Addr, StrId>& d) const noexcept {
        return (*this)(d.first) ^ (static_cast<std::size_t>(d.second) * 0x9e3779b97f4a7c15ull);
    }
};

// Per client, keyed by values (no string per flow); text is made for the few that are shown.
struct Acc {
    ClientRow row;
    std::unordered_map<std::pair<Addr, StrId>, std::uint64_t, AddrHash> destinations;
    std::unordered_map<StrId, std::uint64_t> countries;
    StrId dns_name = k_no_string;

    template <typename Map, typename Text>
    static std::vector<std::string> top(const Map& m, std::size_t n, Text text) {
        std::map<std::string, std::uint64_t> by_text;  // one address, named in some rows only
        for (const auto& [k, bytes] : m) by_text[text(k)] += bytes;
        std::vector<std::pair<std::uint64_t, std::string>> v;
        v.reserve(by_text.size());
        for (const auto& [t, bytes] : by_text) v.emplace_back(bytes, t);
        // Most bytes first, then by name: a stable order for rows without counters.
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        std::vector<std::string> out;
        for (std::size_t i = 0; i < v.size() && i < n; ++i) out.push_back(v[i].second);
        return out;
    }
};

}  // namespace

std::vector<ClientRow> group_by_client(const table::Snapshot& snap,
                                       std::span<const table::FlowRow* const> rows,
                                       const LocalAddresses& local,
                                       const enrich::LeaseBook* leases) {
    // By address; an IPv4 and an IPv6 address never share their bytes (v4 uses four).
    std::unordered_map<Addr, Acc, AddrHash> by_addr[2];
    for (const auto* r : rows) {
        const auto& ct = r->ct;
        const Addr* client = lan_client_addr(local, ct);
        if (!client) continue;
        // The client's own directions: for the internal server of a port forward, what it
        // sends is the reply direction.
        const bool is_orig = client == &ct.orig.src;
        Acc& a = by_addr[ct.family == Family::ipv6][*client];
        ClientRow& c = a.row;
        if (c.flows == 0) {
            c.family = ct.family;
            c.addr = *client;
            c.address = client->to_string(ct.family);
            c.local = local.contains(ct.family, *client);
        }
        ++c.flows;
        std::uint64_t both = 0;
        if (r->has_counters()) {
            const auto sent = is_orig ? ct.orig_counters.bytes : ct.reply_counters.bytes;
            const auto received = is_orig ? ct.reply_counters.bytes : ct.orig_counters.bytes;
            c.sent_bytes += sent;
            c.received_bytes += received;
            both = sent + received;
        }
        if (r->rate_known) {
            c.sent_rate += is_orig ? r->orig_rate : r->reply_rate;
            c.received_rate += is_orig ? r->reply_rate : r->orig_rate;
            for (int w = 0; w < table::k_rate_windows; ++w) {
                c.sent_rate_avg[w] += is_orig ? r->orig_rate_avg[w] : r->reply_rate_avg[w];
                c.received_rate_avg[w] += is_orig ? r->reply_rate_avg[w] : r->orig_rate_avg[w];
            }
        }
        // The remote end: the destination a client went to, or who came in to a server.
        const Addr& remote = is_orig ? ct.orig.dst : ct.orig.src;
        a.destinations[{remote, is_orig ? r->dst_name : r->src_name}] += both;
        const StrId cc = is_orig ? r->dst_country : r->src_country;
        if (cc != k_no_string) a.countries[cc] += both;
        // Reverse DNS of the client itself, where the row has it (its original source, or the
        // original destination when that is the server itself, not a DNAT address).
        if (a.dns_name == k_no_string) {
            if (is_orig)
                a.dns_name = r->src_name;
            else if (ct.orig.dst == ct.reply.src)
                a.dns_name = r->dst_name;
        }
    }
    std::vector<ClientRow> out;
    out.reserve(by_addr[0].size() + by_addr[1].size());
    for (auto& of_family : by_addr)
        for (auto& [key, a] : of_family) {
            ClientRow c = std::move(a.row);
            const auto lease = leases ? leases->name(c.family, c.addr) : std::string_view{};
            c.name = !lease.empty() ? std::string(lease) : sanitize(snap.str(a.dns_name));
            const Family family = c.family;
            c.destinations = Acc::top(a.destinations, 3, [&](const std::pair<Addr, StrId>& d) {
                const auto name = snap.str(d.second);
                return name.empty() ? d.first.to_string(family) : std::string(name);
            });
            c.countries =
                Acc::top(a.countries, 5, [&](StrId id) { return std::string(snap.str(id)); });
            out.push_back(std::move(c));
        }
    std::sort(out.begin(), out.end(), [](const ClientRow& a, const ClientRow& b) {
        const double ra = a.sent_rate + a.received_rate, rb = b.sent_rate + b.received_rate;
        if (ra != rb) return ra > rb;
        const auto ba = a.sent_bytes + a.received_bytes, bb = b.sent_bytes + b.received_bytes;
        if (ba != bb) return ba > bb;
        if (a.flows != b.flows) return a.flows > b.flows;
        return std::pair(a.family, a.addr) < std::pair(b.family, b.addr);
    });
    return out;
}

std::string client_label(const ClientRow& c) {
    return c.name.empty() ? c.address : c.name + " (" + c.address + ")";
}

std::vector<std::string> lease_paths(const Options& o) {
    if (!o.leases_given) return enrich::default_lease_paths();
    std::vector<std::string> out;
    for (const auto& p : o.lease_files)
        if (p != "none") out.push_back(p);
    return out;
}

std::vector<Network> lan_networks(const Options& o) {
    std::vector<Network> out;
    for (const auto& text : o.lans)
        if (auto n = parse_network(text)) out.push_back(*n);
    return out;
}

namespace {

std::string json_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i)
        out += (i ? ",\"" : "\"") + json_escape(items[i]) + '"';
    return out + "]";
}

std::string joined(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
    return out;
}

}  // namespace

void write_client_frame(OutputFormat format, std::FILE* out, const table::Snapshot& snap,
                        const std::vector<ClientRow>& rows, bool bits, bool csv_header) {
    const std::string ts = rfc3339(snap.stats.time_ns);
    switch (format) {
        case OutputFormat::json:
            for (const auto& c : rows) {
                const std::string name = c.name.empty() ? "null" : '"' + json_escape(c.name) + '"';
                std::fprintf(
                    out,
                    "{\"type\":\"client\",\"ts\":\"%s\",\"seq\":%" PRIu64
                    ",\"client\":\"%s\",\"family\":\"%s\",\"name\":%s,\"local\":%s,\"flows\":"
                    "%" PRIu64 ",\"sent_bytes\":%" PRIu64 ",\"received_bytes\":%" PRIu64
                    ",\"sent_rate\":%.1f,\"received_rate\":%.1f,\"sent_rate_2s\":%.1f,"
                    "\"received_rate_2s\":%.1f,\"sent_rate_10s\":%.1f,\"received_rate_10s\":%.1f,"
                    "\"sent_rate_40s\":%.1f,\"received_rate_40s\":%.1f,\"destinations\":%s,"
                    "\"countries\":%s}\n",
                    ts.c_str(), snap.stats.seq, c.address.c_str(),
                    c.family == Family::ipv4 ? "ipv4" : "ipv6", name.c_str(),
                    c.local ? "true" : "false", c.flows, c.sent_bytes, c.received_bytes,
                    c.sent_rate, c.received_rate, c.sent_rate_avg[0], c.received_rate_avg[0],
                    c.sent_rate_avg[1], c.received_rate_avg[1], c.sent_rate_avg[2],
                    c.received_rate_avg[2], json_list(c.destinations).c_str(),
                    json_list(c.countries).c_str());
            }
            break;
        case OutputFormat::csv:
            if (csv_header)
                std::fputs(
                    "ts,client,name,local,flows,sent_bytes,received_bytes,sent_rate,"
                    "received_rate,sent_rate_2s,received_rate_2s,sent_rate_10s,"
                    "received_rate_10s,sent_rate_40s,received_rate_40s,destinations,countries\n",
                    out);
            for (const auto& c : rows)
                std::fprintf(out,
                             "%s,%s,%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64
                             ",%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%s,%s\n",
                             ts.c_str(), c.address.c_str(), csv_quote(c.name).c_str(),
                             c.local ? "true" : "false", c.flows, c.sent_bytes, c.received_bytes,
                             c.sent_rate, c.received_rate, c.sent_rate_avg[0],
                             c.received_rate_avg[0], c.sent_rate_avg[1], c.received_rate_avg[1],
                             c.sent_rate_avg[2], c.received_rate_avg[2],
                             csv_quote(joined(c.destinations, " ")).c_str(),
                             joined(c.countries, " ").c_str());
            break;
        case OutputFormat::table:
            std::fprintf(out, "flowtop %s  clients %zu\n", ts.c_str(), rows.size());
            std::fprintf(out, "%-32s %6s %10s %10s %12s %12s  %s\n", "CLIENT", "FLOWS", "SENT",
                         "RECEIVED", "SENT/S", "RECEIVED/S", "TOP DESTINATIONS");
            for (const auto& c : rows)
                std::fprintf(out, "%-32s %6" PRIu64 " %10s %10s %12s %12s  %s%s%s\n",
                             client_label(c).c_str(), c.flows,
                             human_bytes(static_cast<double>(c.sent_bytes)).c_str(),
                             human_bytes(static_cast<double>(c.received_bytes)).c_str(),
                             human_rate(c.sent_rate, bits).c_str(),
                             human_rate(c.received_rate, bits).c_str(),
                             joined(c.destinations, ", ").c_str(), c.countries.empty() ? "" : "  ",
                             joined(c.countries, " ").c_str());
            std::fputc('\n', out);
            break;
    }
    std::fflush(out);
}

}  // namespace flowtop::ui
