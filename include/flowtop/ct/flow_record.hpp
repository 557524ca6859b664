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
    std::uint8_t proto = 0;                   // IPPROTO_*
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

// Status bits of enum ip_conntrack_status (linux/netfilter/nf_conntrack_common.h) that the
// views name: who was translated, and whether a flowtable has taken the flow over.
inline constexpr std::uint32_t k_status_src_nat = 1u << 4;   // IPS_SRC_NAT: source rewritten
inline constexpr std::uint32_t k_status_dst_nat = 1u << 5;   // IPS_DST_NAT: destination rewritten
inline constexpr std::uint32_t k_status_offload = 1u << 14;  // IPS_OFFLOAD: software flowtable
inline constexpr std::uint32_t k_status_hw_offload = 1u << 15;  // IPS_HW_OFFLOAD: in the NIC

// Which ends of a flow NAT rewrote. snat: the post-NAT source (a masquerading router's WAN
// address and port) is the reply's destination; dnat: the real target (a port forward's
// internal server) is the reply's source.
enum class Nat : std::uint8_t { none, snat, dnat, both };

// From the status bits when the message carried them, else from the tuples (a reply that does
// not mirror the original was translated; DESTROY events carry no status).
constexpr Nat nat_of(const FlowRecord& r) noexcept {
    bool src = false, dst = false;
    if (r.has_status) {
        src = (r.status & k_status_src_nat) != 0;
        dst = (r.status & k_status_dst_nat) != 0;
    } else if (r.reply != Tuple{}) {  // a message without a reply tuple tells nothing
        src = r.reply.dst != r.orig.src || r.reply.dport != r.orig.sport;
        dst = r.reply.src != r.orig.dst || r.reply.sport != r.orig.dport;
    }
    return src && dst ? Nat::both : src ? Nat::snat : dst ? Nat::dnat : Nat::none;
}
// "snat", "dnat", "both", or nullptr for none (JSON null).
constexpr const char* nat_name(Nat nat) noexcept {
    switch (nat) {
        case Nat::snat:
            return "snat";
        case Nat::dnat:
            return "dnat";
        case Nat::both:
            return "both";
        case Nat::none:
            break;
    }
    return nullptr;
}

// Handed to a flowtable (nft `flow add @ft`): packets bypass conntrack, so its counters and
// timeout stop moving while the flow may still carry traffic.
constexpr bool offloaded(const FlowRecord& r) noexcept {
    return r.has_status && (r.status & (k_status_offload | k_status_hw_offload)) != 0;
}

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
