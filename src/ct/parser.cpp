#include "flowtop/ct/parser.hpp"

#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <new>

namespace flowtop::ct {

namespace {

MsgKind kind_of(const nlmsghdr* nlh) {
    auto type = NFNL_MSG_TYPE(nlh->nlmsg_type);
    if (type == IPCTNL_MSG_CT_DELETE) return MsgKind::destroyed;
    if (nlh->nlmsg_flags & NLM_F_MULTI) return MsgKind::dump;
    if (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) return MsgKind::created;
    return MsgKind::updated;
}

// One nest's attributes by type: the last of a type wins and types above Max are skipped, as
// libnetfilter_conntrack reads them. Sizes are checked where a value is read.
template <int Max>
struct Nest {
    std::array<const nlattr*, Max + 1> at{};
    const nlattr* operator[](int type) const noexcept { return at[static_cast<std::size_t>(type)]; }
};

template <int Max>
int collect(const nlattr* attr, void* data) {
    auto& nest = *static_cast<Nest<Max>*>(data);
    const int type = mnl_attr_get_type(attr);
    if (type <= Max) nest.at[static_cast<std::size_t>(type)] = attr;
    return MNL_CB_OK;
}

template <int Max>
bool read_nest(const nlattr* attr, Nest<Max>& out) {
    if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0) return false;
    return mnl_attr_parse_nested(attr, collect<Max>, &out) >= 0;
}

// Absent is fine; present must have the type's size.
bool valid(const nlattr* attr, mnl_attr_data_type type) {
    return !attr || mnl_attr_validate(attr, type) >= 0;
}

std::uint16_t u16_raw(const nlattr* attr) { return mnl_attr_get_u16(attr); }

// A tuple's layer 4 part as libnetfilter_conntrack keeps it: ports and ICMP fields share the
// same two bytes each side (the ICMP id is the source "port", type and code the destination's),
// in network order, whichever attribute came last; a field reads as 0 unless its own attribute
// was there.
struct RawTuple {
    bool has_v4_src = false, has_v4_dst = false, has_v6_src = false, has_v6_dst = false;
    std::uint32_t v4_src = 0, v4_dst = 0;
    const void* v6_src = nullptr;
    const void* v6_dst = nullptr;
    std::uint8_t proto = 0;
    std::array<std::uint8_t, 2> l4src{}, l4dst{};
    bool has_sport = false, has_dport = false, has_icmp_type = false, has_icmp_code = false,
         has_icmp_id = false;
};

void set_u16(std::array<std::uint8_t, 2>& field, const nlattr* attr) {
    const std::uint16_t raw = u16_raw(attr);
    std::memcpy(field.data(), &raw, sizeof raw);
}

std::uint16_t host_u16(const std::array<std::uint8_t, 2>& field) {
    std::uint16_t raw = 0;
    std::memcpy(&raw, field.data(), sizeof raw);
    return ntohs(raw);
}

bool read_tuple(const nlattr* attr, RawTuple& t) {
    Nest<CTA_TUPLE_MAX> tuple;
    if (!read_nest(attr, tuple)) return false;
    if (!valid(tuple[CTA_TUPLE_ZONE], MNL_TYPE_U16)) return false;
    if (const nlattr* ip_attr = tuple[CTA_TUPLE_IP]) {
        Nest<CTA_IP_MAX> ip;
        if (!read_nest(ip_attr, ip)) return false;
        for (int type : {CTA_IP_V4_SRC, CTA_IP_V4_DST})
            if (!valid(ip[type], MNL_TYPE_U32)) return false;
        for (int type : {CTA_IP_V6_SRC, CTA_IP_V6_DST})
            if (ip[type] && mnl_attr_validate2(ip[type], MNL_TYPE_BINARY, 16) < 0) return false;
        if (const nlattr* a = ip[CTA_IP_V4_SRC])
            t.has_v4_src = true, t.v4_src = mnl_attr_get_u32(a);
        if (const nlattr* a = ip[CTA_IP_V4_DST])
            t.has_v4_dst = true, t.v4_dst = mnl_attr_get_u32(a);
        if (const nlattr* a = ip[CTA_IP_V6_SRC])
            t.has_v6_src = true, t.v6_src = mnl_attr_get_payload(a);
        if (const nlattr* a = ip[CTA_IP_V6_DST])
            t.has_v6_dst = true, t.v6_dst = mnl_attr_get_payload(a);
    }
    if (const nlattr* proto_attr = tuple[CTA_TUPLE_PROTO]) {
        Nest<CTA_PROTO_MAX> proto;
        if (!read_nest(proto_attr, proto)) return false;
        for (int type :
             {CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT, CTA_PROTO_ICMP_ID, CTA_PROTO_ICMPV6_ID})
            if (!valid(proto[type], MNL_TYPE_U16)) return false;
        for (int type : {CTA_PROTO_NUM, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE,
                         CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE})
            if (!valid(proto[type], MNL_TYPE_U8)) return false;
        if (const nlattr* a = proto[CTA_PROTO_NUM]) t.proto = mnl_attr_get_u8(a);
        if (const nlattr* a = proto[CTA_PROTO_SRC_PORT]) set_u16(t.l4src, a), t.has_sport = true;
        if (const nlattr* a = proto[CTA_PROTO_DST_PORT]) set_u16(t.l4dst, a), t.has_dport = true;
        for (int type : {CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE, CTA_PROTO_ICMP_ID,
                         CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE, CTA_PROTO_ICMPV6_ID}) {
            const nlattr* a = proto[type];
            if (!a) continue;
            if (type == CTA_PROTO_ICMP_TYPE || type == CTA_PROTO_ICMPV6_TYPE) {
                t.l4dst[0] = mnl_attr_get_u8(a);
                t.has_icmp_type = true;
            } else if (type == CTA_PROTO_ICMP_CODE || type == CTA_PROTO_ICMPV6_CODE) {
                t.l4dst[1] = mnl_attr_get_u8(a);
                t.has_icmp_code = true;
            } else {
                set_u16(t.l4src, a);
                t.has_icmp_id = true;
            }
        }
    }
    return true;
}

// Packets and bytes of one direction, 64-bit or (older kernels) 32-bit; false when malformed.
bool read_counters(const nlattr* attr, Counters& out, bool& has_bytes) {
    Nest<CTA_COUNTERS_MAX> c;
    if (!read_nest(attr, c)) return false;
    if (!valid(c[CTA_COUNTERS_PACKETS], MNL_TYPE_U64) ||
        !valid(c[CTA_COUNTERS_BYTES], MNL_TYPE_U64) ||
        !valid(c[CTA_COUNTERS32_PACKETS], MNL_TYPE_U32) ||
        !valid(c[CTA_COUNTERS32_BYTES], MNL_TYPE_U32))
        return false;
    if (const nlattr* a = c[CTA_COUNTERS32_PACKETS]) out.packets = ntohl(mnl_attr_get_u32(a));
    if (const nlattr* a = c[CTA_COUNTERS_PACKETS]) out.packets = be64toh(mnl_attr_get_u64(a));
    if (const nlattr* a = c[CTA_COUNTERS32_BYTES]) out.bytes = ntohl(mnl_attr_get_u32(a));
    if (const nlattr* a = c[CTA_COUNTERS_BYTES]) out.bytes = be64toh(mnl_attr_get_u64(a));
    has_bytes = c[CTA_COUNTERS_BYTES] || c[CTA_COUNTERS32_BYTES];
    return true;
}

bool fill_tuple(Family family, const RawTuple& raw, Tuple& out) {
    if (family == Family::ipv4) {
        if (!raw.has_v4_src || !raw.has_v4_dst) return false;
        out.src = Addr::v4(raw.v4_src);
        out.dst = Addr::v4(raw.v4_dst);
    } else {
        if (!raw.has_v6_src || !raw.has_v6_dst) return false;
        out.src = Addr::v6(raw.v6_src);
        out.dst = Addr::v6(raw.v6_dst);
    }
    return true;
}

}  // namespace

// Reads the attributes straight from the message (libmnl walks them, bounded by the message):
// about ten times cheaper than filling a libnetfilter_conntrack object and reading it back, and
// a malformed attribute is one skipped message here, where that library calls exit().
bool Parser::parse_message(const nlmsghdr* nlh, FlowRecord& r) {
    if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return false;
    auto type = NFNL_MSG_TYPE(nlh->nlmsg_type);
    if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) return false;
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return false;
    const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    const std::size_t header = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg));
    if (nlh->nlmsg_len < header) return false;
    Nest<CTA_MAX> top;
    if (mnl_attr_parse_payload(reinterpret_cast<const char*>(nlh) + header, nlh->nlmsg_len - header,
                               collect<CTA_MAX>, &top) < 0)
        return false;
    for (int t : {CTA_STATUS, CTA_MARK, CTA_ID})
        if (!valid(top[t], MNL_TYPE_U32)) return false;
    if (!valid(top[CTA_ZONE], MNL_TYPE_U16)) return false;
    // The kernel's messages always carry both tuples, each with both addresses.
    if (!top[CTA_TUPLE_ORIG] || !top[CTA_TUPLE_REPLY]) return false;
    RawTuple orig, reply;
    if (!read_tuple(top[CTA_TUPLE_ORIG], orig) || !read_tuple(top[CTA_TUPLE_REPLY], reply))
        return false;

    r = FlowRecord{};
    r.kind = kind_of(nlh);
    if (nfg->nfgen_family == AF_INET)
        r.family = Family::ipv4;
    else if (nfg->nfgen_family == AF_INET6)
        r.family = Family::ipv6;
    else
        return false;
    if (!fill_tuple(r.family, orig, r.orig) || !fill_tuple(r.family, reply, r.reply)) return false;
    r.proto = orig.proto;
    if (r.proto == IPPROTO_ICMP || r.proto == IPPROTO_ICMPV6) {
        // The ICMP fields are the original tuple's; an ICMP attribute in either tuple says
        // they are there (libnetfilter_conntrack keeps one flag for both).
        r.icmp_type = orig.has_icmp_type || reply.has_icmp_type ? orig.l4dst[0] : 0;
        r.icmp_code = orig.has_icmp_code || reply.has_icmp_code ? orig.l4dst[1] : 0;
        r.icmp_id = orig.has_icmp_id || reply.has_icmp_id ? host_u16(orig.l4src) : 0;
    } else {
        r.orig.sport = orig.has_sport ? host_u16(orig.l4src) : 0;
        r.orig.dport = orig.has_dport ? host_u16(orig.l4dst) : 0;
        r.reply.sport = reply.has_sport ? host_u16(reply.l4src) : 0;
        r.reply.dport = reply.has_dport ? host_u16(reply.l4dst) : 0;
    }
    if (const nlattr* a = top[CTA_ID]) r.id = ntohl(mnl_attr_get_u32(a));
    if (const nlattr* a = top[CTA_STATUS]) {
        r.has_status = true;
        r.status = ntohl(mnl_attr_get_u32(a));
    }
    if (const nlattr* a = top[CTA_MARK]) r.mark = ntohl(mnl_attr_get_u32(a));
    if (const nlattr* a = top[CTA_ZONE]) r.zone = ntohs(mnl_attr_get_u16(a));
    if (const nlattr* a = top[CTA_PROTOINFO]) {
        Nest<CTA_PROTOINFO_MAX> info;
        if (!read_nest(a, info)) return false;
        if (const nlattr* tcp_attr = info[CTA_PROTOINFO_TCP]) {
            Nest<CTA_PROTOINFO_TCP_MAX> tcp;
            if (!read_nest(tcp_attr, tcp) || !valid(tcp[CTA_PROTOINFO_TCP_STATE], MNL_TYPE_U8))
                return false;
            if (const nlattr* s = tcp[CTA_PROTOINFO_TCP_STATE]) r.tcp_state = mnl_attr_get_u8(s);
        }
    }
    bool orig_bytes = false, reply_bytes = false;
    if (const nlattr* a = top[CTA_COUNTERS_ORIG])
        if (!read_counters(a, r.orig_counters, orig_bytes)) return false;
    if (const nlattr* a = top[CTA_COUNTERS_REPLY])
        if (!read_counters(a, r.reply_counters, reply_bytes)) return false;
    r.has_counters = orig_bytes;
    if (!r.has_counters) r.orig_counters = r.reply_counters = {};
    if (const nlattr* a = top[CTA_TIMESTAMP]) {
        Nest<CTA_TIMESTAMP_MAX> ts;
        if (!read_nest(a, ts) || !valid(ts[CTA_TIMESTAMP_START], MNL_TYPE_U64) ||
            !valid(ts[CTA_TIMESTAMP_STOP], MNL_TYPE_U64))
            return false;
        if (const nlattr* t = ts[CTA_TIMESTAMP_START]) r.start_ns = be64toh(mnl_attr_get_u64(t));
        if (const nlattr* t = ts[CTA_TIMESTAMP_STOP]) r.stop_ns = be64toh(mnl_attr_get_u64(t));
    }
    return true;
}

void Parser::walk(std::span<const std::byte> buf, ParseResult& result, Callback cb, void* ctx) {
    FlowRecord record;
    refused_.clear();
    std::size_t offset = 0;
    while (buf.size() - offset >= sizeof(nlmsghdr)) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data() + offset);
        // Not mnl_nlmsg_ok: it compares the length as a signed int, so a length of 2^31 or more
        // passes and the walk jumps out of the buffer (found by tests/fuzz/ct_parser_fuzz).
        if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > buf.size() - offset) break;
        ++result.messages;
        if (nlh->nlmsg_type == NLMSG_DONE) {
            result.done = true;
        } else if (nlh->nlmsg_type == NLMSG_ERROR) {
            if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr))) {
                const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
                ++result.answers;
                if (err->error != 0) {
                    // The kernel sends -errno; anything else is malformed (and -INT_MIN would
                    // overflow: found by tests/fuzz).
                    const int code = err->error < 0 && err->error > -4096 ? -err->error : EPROTO;
                    result.netlink_error = code;
                    refused_.push_back({err->msg.nlmsg_seq, code});
                }
            } else {
                ++result.errors;
            }
        } else if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) {
            ++result.answers;
            if (parse_message(nlh, record)) {
                ++result.flows;
                cb(ctx, record);
            } else {
                ++result.errors;
            }
        }
        offset = std::min(buf.size(), offset + NLMSG_ALIGN(nlh->nlmsg_len));
    }
}

namespace {
constexpr const char* k_tcp_states[] = {"NONE",     "SYN_SENT",   "SYN_RECV", "ESTABLISHED",
                                        "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
                                        "CLOSE",    "SYN_SENT2"};
}

const char* tcp_state_name(std::uint8_t state) noexcept {
    if (state < std::size(k_tcp_states)) return k_tcp_states[state];
    return nullptr;
}

bool tcp_state_ended(std::uint8_t state) noexcept {
    return state == 7 /* TIME_WAIT */ || state == 8 /* CLOSE */;
}

std::string status_names(std::uint32_t status) {
    // Bit order of enum ip_conntrack_status (linux/netfilter/nf_conntrack_common.h).
    static constexpr const char* k_names[] = {
        "EXPECTED",   "SEEN_REPLY",   "ASSURED",      "CONFIRMED", "SRC_NAT",       "DST_NAT",
        "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING",     "FIXED_TIMEOUT", "TEMPLATE",
        "UNTRACKED",  "HELPER",       "OFFLOAD",      "HW_OFFLOAD"};
    std::string out;
    for (std::size_t bit = 0; bit < std::size(k_names); ++bit) {
        if (!(status & (1u << bit))) continue;
        if (!out.empty()) out += ',';
        out += k_names[bit];
    }
    return out;
}

const char* proto_name(std::uint8_t proto) noexcept {
    switch (proto) {
        case IPPROTO_TCP:
            return "tcp";
        case IPPROTO_UDP:
            return "udp";
        case IPPROTO_ICMP:
            return "icmp";
        case IPPROTO_ICMPV6:
            return "icmpv6";
        case IPPROTO_SCTP:
            return "sctp";
        case IPPROTO_DCCP:
            return "dccp";
        case IPPROTO_UDPLITE:
            return "udplite";
        case IPPROTO_GRE:
            return "gre";
        default:
            return nullptr;
    }
}

}  // namespace flowtop::ct
