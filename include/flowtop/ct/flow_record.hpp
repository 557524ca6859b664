#pragma once
// What one conntrack netlink message says about one flow, as plain values.
#include <cstdint>
#include <string>

#include "flowtop/util/addr.hpp"

namespace flowtop::ct {

enum class MsgKind : std::uint8_t { dump, created, updated, destroyed };

struct Tuple {
    Addr src;
    Addr dst;
    std::uint16_t sport = 0;  // host order; ICMP: 0
    std::uint16_t dport = 0;
    friend bool operator==(const Tuple&, const Tuple&) = default;
};

struct Counters {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    friend bool operator==(const Counters&, const Counters&) = default;
};

constexpr std::uint8_t k_no_tcp_state = 0xff;

struct FlowRecord {
    std::uint32_t id = 0;
    MsgKind kind = MsgKind::dump;
    Family family = Family::ipv4;
    std::uint8_t proto = 0;                    // IPPROTO_*
    std::uint8_t tcp_state = k_no_tcp_state;  // TCP_CONNTRACK_*, when the message carries it
    bool has_status = false;
    bool has_counters = false;  // only flows created while nf_conntrack_acct was 1 have them
    std::uint32_t status = 0;   // IPS_* bits
    Tuple orig;
    Tuple reply;
    Counters orig_counters;
    Counters reply_counters;
    std::uint64_t start_ns = 0;  // CLOCK_REALTIME; 0 when nf_conntrack_timestamp was off
    std::uint64_t stop_ns = 0;
    std::uint32_t mark = 0;
    std::uint16_t zone = 0;
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;
    std::uint16_t icmp_id = 0;
    // Which watched network namespace the message came from: the collector's source index
    // (0 when watching one). Conntrack ids are unique only within a namespace.
    std::uint16_t source = 0;
    friend bool operator==(const FlowRecord&, const FlowRecord&) = default;
};

// A flow's identity across every watched namespace: the source index above the conntrack id.
using FlowKey = std::uint64_t;
constexpr FlowKey flow_key(std::uint16_t source, std::uint32_t id) noexcept {
    return (static_cast<FlowKey>(source) << 32) | id;
}
constexpr FlowKey flow_key(const FlowRecord& r) noexcept { return flow_key(r.source, r.id); }
constexpr std::uint16_t key_source(FlowKey key) noexcept {
    return static_cast<std::uint16_t>(key >> 32);
}
constexpr std::uint32_t key_id(FlowKey key) noexcept { return static_cast<std::uint32_t>(key); }

// Names for output: "tcp", "udp", ... or the number as text.
const char* proto_name(std::uint8_t proto) noexcept;
// "ESTABLISHED", "TIME_WAIT", ... or nullptr when there is no TCP state.
const char* tcp_state_name(std::uint8_t state) noexcept;
// The conntrack status bits as names, e.g. "SEEN_REPLY,ASSURED,CONFIRMED" ("" for none).
std::string status_names(std::uint32_t status);
// A TCP state in which the connection has ended (FIN/RST seen on both sides or closed).
bool tcp_state_ended(std::uint8_t state) noexcept;

}  // namespace flowtop::ct
