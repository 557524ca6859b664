#include "flowtop/ct/parser.hpp"

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <new>

namespace flowtop::ct {

Parser::Parser() : ct_(nfct_new()) {
    if (!ct_) throw std::bad_alloc();
}

Parser::~Parser() { nfct_destroy(ct_); }

namespace {

MsgKind kind_of(const nlmsghdr* nlh) {
    auto type = NFNL_MSG_TYPE(nlh->nlmsg_type);
    if (type == IPCTNL_MSG_CT_DELETE) return MsgKind::destroyed;
    if (nlh->nlmsg_flags & NLM_F_MULTI) return MsgKind::dump;
    if (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) return MsgKind::created;
    return MsgKind::updated;
}

}  // namespace

bool Parser::parse_message(const nlmsghdr* nlh, FlowRecord& r) {
    if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return false;
    auto type = NFNL_MSG_TYPE(nlh->nlmsg_type);
    if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) return false;
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return false;

    // nfct_nlmsg_parse only sets attributes, and an object may own allocations (labels, secctx):
    // a fresh object per message keeps one message's values out of the next without leaking.
    nf_conntrack* fresh = nfct_new();
    if (!fresh) return false;
    nfct_destroy(ct_);
    ct_ = fresh;
    if (nfct_nlmsg_parse(nlh, ct_) < 0) return false;

    r = FlowRecord{};
    r.kind = kind_of(nlh);
    r.id = nfct_get_attr_u32(ct_, ATTR_ID);
    const auto l3 = nfct_get_attr_u8(ct_, ATTR_L3PROTO);
    r.proto = nfct_get_attr_u8(ct_, ATTR_L4PROTO);
    // The kernel's messages always carry both tuples; a message without one of the four
    // addresses is malformed (for IPv6 nfct_get_attr would hand back a null pointer).
    const auto has_all = [this](std::initializer_list<nf_conntrack_attr> attrs) {
        for (auto a : attrs)
            if (nfct_attr_is_set(ct_, a) <= 0) return false;
        return true;
    };
    if (l3 == AF_INET) {
        if (!has_all(
                {ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST}))
            return false;
        r.family = Family::ipv4;
        r.orig.src = Addr::v4(nfct_get_attr_u32(ct_, ATTR_ORIG_IPV4_SRC));
        r.orig.dst = Addr::v4(nfct_get_attr_u32(ct_, ATTR_ORIG_IPV4_DST));
        r.reply.src = Addr::v4(nfct_get_attr_u32(ct_, ATTR_REPL_IPV4_SRC));
        r.reply.dst = Addr::v4(nfct_get_attr_u32(ct_, ATTR_REPL_IPV4_DST));
    } else if (l3 == AF_INET6) {
        if (!has_all(
                {ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST}))
            return false;
        r.family = Family::ipv6;
        r.orig.src = Addr::v6(nfct_get_attr(ct_, ATTR_ORIG_IPV6_SRC));
        r.orig.dst = Addr::v6(nfct_get_attr(ct_, ATTR_ORIG_IPV6_DST));
        r.reply.src = Addr::v6(nfct_get_attr(ct_, ATTR_REPL_IPV6_SRC));
        r.reply.dst = Addr::v6(nfct_get_attr(ct_, ATTR_REPL_IPV6_DST));
    } else {
        return false;
    }
    if (r.proto == IPPROTO_ICMP || r.proto == IPPROTO_ICMPV6) {
        r.icmp_type = nfct_get_attr_u8(ct_, ATTR_ICMP_TYPE);
        r.icmp_code = nfct_get_attr_u8(ct_, ATTR_ICMP_CODE);
        r.icmp_id = ntohs(nfct_get_attr_u16(ct_, ATTR_ICMP_ID));
    } else {
        r.orig.sport = ntohs(nfct_get_attr_u16(ct_, ATTR_ORIG_PORT_SRC));
        r.orig.dport = ntohs(nfct_get_attr_u16(ct_, ATTR_ORIG_PORT_DST));
        r.reply.sport = ntohs(nfct_get_attr_u16(ct_, ATTR_REPL_PORT_SRC));
        r.reply.dport = ntohs(nfct_get_attr_u16(ct_, ATTR_REPL_PORT_DST));
    }
    if (nfct_attr_is_set(ct_, ATTR_TCP_STATE) > 0)
        r.tcp_state = nfct_get_attr_u8(ct_, ATTR_TCP_STATE);
    if (nfct_attr_is_set(ct_, ATTR_STATUS) > 0) {
        r.has_status = true;
        r.status = nfct_get_attr_u32(ct_, ATTR_STATUS);
    }
    if (nfct_attr_is_set(ct_, ATTR_ORIG_COUNTER_BYTES) > 0) {
        r.has_counters = true;
        r.orig_counters = {nfct_get_attr_u64(ct_, ATTR_ORIG_COUNTER_PACKETS),
                           nfct_get_attr_u64(ct_, ATTR_ORIG_COUNTER_BYTES)};
        r.reply_counters = {nfct_get_attr_u64(ct_, ATTR_REPL_COUNTER_PACKETS),
                            nfct_get_attr_u64(ct_, ATTR_REPL_COUNTER_BYTES)};
    }
    if (nfct_attr_is_set(ct_, ATTR_TIMESTAMP_START) > 0)
        r.start_ns = nfct_get_attr_u64(ct_, ATTR_TIMESTAMP_START);
    if (nfct_attr_is_set(ct_, ATTR_TIMESTAMP_STOP) > 0)
        r.stop_ns = nfct_get_attr_u64(ct_, ATTR_TIMESTAMP_STOP);
    if (nfct_attr_is_set(ct_, ATTR_MARK) > 0) r.mark = nfct_get_attr_u32(ct_, ATTR_MARK);
    if (nfct_attr_is_set(ct_, ATTR_ZONE) > 0) r.zone = nfct_get_attr_u16(ct_, ATTR_ZONE);
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
