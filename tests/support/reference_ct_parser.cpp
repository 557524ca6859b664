// The conntrack message parser flowtop used before it read attributes itself: through
// libnetfilter_conntrack's object (nfct_nlmsg_parse, then nfct_get_attr). Tests and the
// ct_parser fuzzer compare ct::Parser against it; the library calls exit() on an attribute of
// the wrong size (__abi_breakage), which the fuzzer interposes.
#include "reference_ct_parser.hpp"

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <initializer_list>

namespace flowtop::test {

using ct::FlowRecord;
using ct::MsgKind;

bool reference_parse_message(const nlmsghdr* nlh, FlowRecord& r) {
    if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return false;
    auto type = NFNL_MSG_TYPE(nlh->nlmsg_type);
    if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) return false;
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return false;

    // A fresh object per message (nfct_nlmsg_parse only sets attributes), kept in a static:
    // the fuzzer may longjmp out of the library, and then no destructor runs, but nothing
    // leaks either.
    static nf_conntrack* obj = nullptr;
    if (obj) nfct_destroy(obj);
    obj = nfct_new();
    if (!obj) return false;
    if (nfct_nlmsg_parse(nlh, obj) < 0) return false;

    r = FlowRecord{};
    r.kind = type == IPCTNL_MSG_CT_DELETE                       ? MsgKind::destroyed
             : (nlh->nlmsg_flags & NLM_F_MULTI)                 ? MsgKind::dump
             : (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ? MsgKind::created
                                                                : MsgKind::updated;
    r.id = nfct_get_attr_u32(obj, ATTR_ID);
    const auto l3 = nfct_get_attr_u8(obj, ATTR_L3PROTO);
    r.proto = nfct_get_attr_u8(obj, ATTR_L4PROTO);
    // The kernel's messages always carry both tuples; a message without one of the four
    // addresses is malformed (for IPv6 nfct_get_attr would hand back a null pointer).
    const auto has_all = [](std::initializer_list<nf_conntrack_attr> attrs) {
        for (auto a : attrs)
            if (nfct_attr_is_set(obj, a) <= 0) return false;
        return true;
    };
    if (l3 == AF_INET) {
        if (!has_all(
                {ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST}))
            return false;
        r.family = Family::ipv4;
        r.orig.src = Addr::v4(nfct_get_attr_u32(obj, ATTR_ORIG_IPV4_SRC));
        r.orig.dst = Addr::v4(nfct_get_attr_u32(obj, ATTR_ORIG_IPV4_DST));
        r.reply.src = Addr::v4(nfct_get_attr_u32(obj, ATTR_REPL_IPV4_SRC));
        r.reply.dst = Addr::v4(nfct_get_attr_u32(obj, ATTR_REPL_IPV4_DST));
    } else if (l3 == AF_INET6) {
        if (!has_all(
                {ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST}))
            return false;
        r.family = Family::ipv6;
        r.orig.src = Addr::v6(nfct_get_attr(obj, ATTR_ORIG_IPV6_SRC));
        r.orig.dst = Addr::v6(nfct_get_attr(obj, ATTR_ORIG_IPV6_DST));
        r.reply.src = Addr::v6(nfct_get_attr(obj, ATTR_REPL_IPV6_SRC));
        r.reply.dst = Addr::v6(nfct_get_attr(obj, ATTR_REPL_IPV6_DST));
    } else {
        return false;
    }
    if (r.proto == IPPROTO_ICMP || r.proto == IPPROTO_ICMPV6) {
        r.icmp_type = nfct_get_attr_u8(obj, ATTR_ICMP_TYPE);
        r.icmp_code = nfct_get_attr_u8(obj, ATTR_ICMP_CODE);
        r.icmp_id = ntohs(nfct_get_attr_u16(obj, ATTR_ICMP_ID));
    } else {
        r.orig.sport = ntohs(nfct_get_attr_u16(obj, ATTR_ORIG_PORT_SRC));
        r.orig.dport = ntohs(nfct_get_attr_u16(obj, ATTR_ORIG_PORT_DST));
        r.reply.sport = ntohs(nfct_get_attr_u16(obj, ATTR_REPL_PORT_SRC));
        r.reply.dport = ntohs(nfct_get_attr_u16(obj, ATTR_REPL_PORT_DST));
    }
    if (nfct_attr_is_set(obj, ATTR_TCP_STATE) > 0)
        r.tcp_state = nfct_get_attr_u8(obj, ATTR_TCP_STATE);
    if (nfct_attr_is_set(obj, ATTR_STATUS) > 0) {
        r.has_status = true;
        r.status = nfct_get_attr_u32(obj, ATTR_STATUS);
    }
    if (nfct_attr_is_set(obj, ATTR_ORIG_COUNTER_BYTES) > 0) {
        r.has_counters = true;
        r.orig_counters = {nfct_get_attr_u64(obj, ATTR_ORIG_COUNTER_PACKETS),
                           nfct_get_attr_u64(obj, ATTR_ORIG_COUNTER_BYTES)};
        r.reply_counters = {nfct_get_attr_u64(obj, ATTR_REPL_COUNTER_PACKETS),
                            nfct_get_attr_u64(obj, ATTR_REPL_COUNTER_BYTES)};
    }
    if (nfct_attr_is_set(obj, ATTR_TIMESTAMP_START) > 0)
        r.start_ns = nfct_get_attr_u64(obj, ATTR_TIMESTAMP_START);
    if (nfct_attr_is_set(obj, ATTR_TIMESTAMP_STOP) > 0)
        r.stop_ns = nfct_get_attr_u64(obj, ATTR_TIMESTAMP_STOP);
    if (nfct_attr_is_set(obj, ATTR_MARK) > 0) r.mark = nfct_get_attr_u32(obj, ATTR_MARK);
    if (nfct_attr_is_set(obj, ATTR_ZONE) > 0) r.zone = nfct_get_attr_u16(obj, ATTR_ZONE);
    return true;
}

}  // namespace flowtop::test
