#pragma once
// The flow as named fields, in output order: one definition serves JSON, CSV and the detail
// view, so a key means the same thing everywhere ("orig_bytes" from kernel to screen).
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "flowtop/table/snapshot.hpp"

namespace flowtop::ui {

struct Null {};
using FieldValue = std::variant<Null, bool, std::int64_t, std::uint64_t, double, std::string>;

struct Field {
    const char* key;
    FieldValue value;
};

// The keys in order, for the CSV header.
const std::vector<const char*>& flow_field_keys();

// Fills `out` (cleared first) with the row's fields, in the order of flow_field_keys().
void flow_fields(const table::Snapshot& snap, const table::FlowRow& row, std::vector<Field>& out);

// "198.51.100.254:61000", "[2001:db8::1]:80"; the address alone for ICMP.
std::string addr_port_text(const ct::FlowRecord& ct, const Addr& addr, std::uint16_t port);
// The original direction as the far side of NAT sees it (the reply tuple reversed): the
// masquerading router's WAN address and port as the source, a port forward's internal
// target as the destination. "src -> dst", each with its port.
std::string translated_text(const ct::FlowRecord& ct);
std::string original_text(const ct::FlowRecord& ct);

// "2026-11-22T23:59:59.123Z"
std::string rfc3339(std::uint64_t realtime_ns);

// Human units: "512 B", "4.9 kB", "1.2 MB"; with bits, "38.4 kbit/s".
std::string human_bytes(double bytes);
std::string human_rate(double bytes_per_s, bool bits);

}  // namespace flowtop::ui
