#include "flowtop/ui/flow_fields.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace flowtop::ui {
namespace {

FieldValue name_or_null(const table::Snapshot& snap, StrId id) {
    if (id == k_no_string) return Null{};
    return std::string(snap.str(id));
}

FieldValue counter(const table::FlowRow& row, std::uint64_t value) {
    if (!row.has_counters()) return Null{};
    return value;
}

FieldValue rate(const table::FlowRow& row, double value) {
    if (!row.has_counters() || !row.rate_known) return Null{};
    return std::round(value * 10) / 10;
}

FieldValue port(const table::FlowRow& row, std::uint16_t p) {
    if (row.ct.proto == 1 || row.ct.proto == 58) return Null{};  // ICMP has no ports
    return std::uint64_t{p};
}

}  // namespace

const std::vector<const char*>& flow_field_keys() {
    static const std::vector<const char*> keys = {
        "ts",           "id",          "family",        "proto",       "state",
        "src",          "sport",       "dst",           "dport",       "reply_src",
        "reply_sport",  "reply_dst",   "reply_dport",   "nat",         "orig_bytes",
        "orig_packets", "reply_bytes", "reply_packets", "orig_rate",   "reply_rate",
        "age_s",        "closed",      "status",        "offloaded",   "start",
        "mark",         "zone",        "icmp_type",     "icmp_code",   "src_name",
        "dst_name",     "service",     "src_country",   "dst_country", "dst_country_name",
        "dst_city",     "dst_asn",     "dst_org",       "pid",         "comm",
        "cmdline",      "user",        "container",     "forwarded",   "netns",
        "alert",
    };
    return keys;
}

void flow_fields(const table::Snapshot& snap, const table::FlowRow& row, std::vector<Field>& out) {
    const auto& ct = row.ct;
    const Family fam = ct.family;
    const bool icmp = ct.proto == 1 || ct.proto == 58;
    const char* proto = ct::proto_name(ct.proto);
    const char* state = ct.proto == 6 ? ct::tcp_state_name(ct.tcp_state) : nullptr;
    out.clear();
    out.push_back({"ts", rfc3339(snap.stats.time_ns)});
    out.push_back({"id", std::uint64_t{ct.id}});
    out.push_back({"family", std::string(fam == Family::ipv4 ? "ipv4" : "ipv6")});
    out.push_back(
        {"proto", proto ? FieldValue(std::string(proto)) : FieldValue(std::to_string(ct.proto))});
    out.push_back({"state", state ? FieldValue(std::string(state)) : FieldValue(Null{})});
    out.push_back({"src", ct.orig.src.to_string(fam)});
    out.push_back({"sport", port(row, ct.orig.sport)});
    out.push_back({"dst", ct.orig.dst.to_string(fam)});
    out.push_back({"dport", port(row, ct.orig.dport)});
    out.push_back({"reply_src", ct.reply.src.to_string(fam)});
    out.push_back({"reply_sport", port(row, ct.reply.sport)});
    out.push_back({"reply_dst", ct.reply.dst.to_string(fam)});
    out.push_back({"reply_dport", port(row, ct.reply.dport)});
    // The reply tuple above says what NAT did; this says which ends it rewrote (null: none).
    const char* nat = ct::nat_name(ct::nat_of(ct));
    out.push_back({"nat", nat ? FieldValue(std::string(nat)) : FieldValue(Null{})});
    out.push_back({"orig_bytes", counter(row, ct.orig_counters.bytes)});
    out.push_back({"orig_packets", counter(row, ct.orig_counters.packets)});
    out.push_back({"reply_bytes", counter(row, ct.reply_counters.bytes)});
    out.push_back({"reply_packets", counter(row, ct.reply_counters.packets)});
    out.push_back({"orig_rate", rate(row, row.orig_rate)});
    out.push_back({"reply_rate", rate(row, row.reply_rate)});
    out.push_back({"age_s", std::round(row.age_s(snap.stats.time_ns) * 10) / 10});
    out.push_back({"closed", row.closed});
    out.push_back(
        {"status", ct.has_status ? FieldValue(ct::status_names(ct.status)) : FieldValue(Null{})});
    // Handed to a flowtable: the kernel's counters for it stop moving (they may be stale).
    out.push_back({"offloaded", ct::offloaded(ct)});
    out.push_back({"start", ct.start_ns ? FieldValue(rfc3339(ct.start_ns)) : FieldValue(Null{})});
    out.push_back({"mark", std::uint64_t{ct.mark}});
    out.push_back({"zone", std::uint64_t{ct.zone}});
    out.push_back(
        {"icmp_type", icmp ? FieldValue(std::uint64_t{ct.icmp_type}) : FieldValue(Null{})});
    out.push_back(
        {"icmp_code", icmp ? FieldValue(std::uint64_t{ct.icmp_code}) : FieldValue(Null{})});
    out.push_back({"src_name", name_or_null(snap, row.src_name)});
    out.push_back({"dst_name", name_or_null(snap, row.dst_name)});
    out.push_back({"service", name_or_null(snap, row.service)});
    out.push_back({"src_country", name_or_null(snap, row.src_country)});
    out.push_back({"dst_country", name_or_null(snap, row.dst_country)});
    out.push_back({"dst_country_name", name_or_null(snap, row.dst_country_name)});
    out.push_back({"dst_city", name_or_null(snap, row.dst_city)});
    out.push_back(
        {"dst_asn", row.dst_asn ? FieldValue(std::uint64_t{row.dst_asn}) : FieldValue(Null{})});
    out.push_back({"dst_org", name_or_null(snap, row.dst_org)});
    out.push_back({"pid", row.pid ? FieldValue(std::uint64_t{row.pid}) : FieldValue(Null{})});
    out.push_back({"comm", name_or_null(snap, row.comm)});
    out.push_back({"cmdline", name_or_null(snap, row.cmdline)});
    out.push_back({"user", name_or_null(snap, row.user)});
    out.push_back({"container", name_or_null(snap, row.container)});
    // True when no socket on this host owns the flow and neither end is local: routed through.
    // Null until the attributor has decided (the first frame of a flow, and with --no-proc).
    out.push_back({"forwarded", row.forwarded_known ? FieldValue(row.forwarded) : Null{}});
    out.push_back({"netns", name_or_null(snap, row.netns)});
    // The id of the latest alert this flow is evidence of ({"type":"alert"} lines).
    out.push_back({"alert", row.alert ? FieldValue(std::uint64_t{row.alert}) : FieldValue(Null{})});
}

std::string addr_port_text(const ct::FlowRecord& ct, const Addr& addr, std::uint16_t port) {
    std::string host = addr.to_string(ct.family);
    if (ct.proto == 1 || ct.proto == 58) return host;
    if (ct.family == Family::ipv6) host = "[" + host + "]";
    return host + ":" + std::to_string(port);
}

std::string original_text(const ct::FlowRecord& ct) {
    return addr_port_text(ct, ct.orig.src, ct.orig.sport) + " \u2192 " +
           addr_port_text(ct, ct.orig.dst, ct.orig.dport);
}

std::string translated_text(const ct::FlowRecord& ct) {
    return addr_port_text(ct, ct.reply.dst, ct.reply.dport) + " \u2192 " +
           addr_port_text(ct, ct.reply.src, ct.reply.sport);
}

std::string rfc3339(std::uint64_t realtime_ns) {
    time_t secs = static_cast<time_t>(realtime_ns / 1'000'000'000ull);
    unsigned millis = static_cast<unsigned>((realtime_ns / 1'000'000ull) % 1000);
    tm utc{};
    gmtime_r(&secs, &utc);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    return buf;
}

namespace {
std::string scaled(double value, const char* const units[], int count, double step) {
    int i = 0;
    while (std::fabs(value) >= step && i < count - 1) {
        value /= step;
        ++i;
    }
    char buf[32];
    if (i == 0)
        std::snprintf(buf, sizeof buf, "%.0f %s", value, units[i]);
    else
        std::snprintf(buf, sizeof buf, "%.1f %s", value, units[i]);
    return buf;
}
}  // namespace

std::string human_bytes(double bytes) {
    static const char* const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    return scaled(bytes, units, 6, 1000.0);
}

std::string human_rate(double bytes_per_s, bool bits) {
    if (bits) {
        static const char* const units[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
        return scaled(bytes_per_s * 8, units, 5, 1000.0);
    }
    static const char* const units[] = {"B/s", "kB/s", "MB/s", "GB/s", "TB/s"};
    return scaled(bytes_per_s, units, 5, 1000.0);
}

}  // namespace flowtop::ui
