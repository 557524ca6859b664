// libFuzzer target: conntrack netlink bytes, as recv() hands them to the collector, through
// Parser::parse into FlowTable rows. Each message libnetfilter_conntrack reads (the reference
// parser in tests/support) must read the same with Parser, and each parsed record is also
// rebuilt into a conntrack message (that library's builder) and parsed again: the fields the
// builder carries must come back unchanged, so the parser reads what it claims to.
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "flowtop/ct/parser.hpp"
#include "flowtop/table/flow_table.hpp"
#include "flowtop/util/handle.hpp"
#include "reference_ct_parser.hpp"

using namespace flowtop;

namespace {
std::jmp_buf abi_breakage_exit;
}

// libnetfilter_conntrack 1.0.9 calls exit(1) ("ctnetlink kernel ABI is broken") when an
// attribute has the wrong size: reachable only through a kernel ABI change or a root process
// writing to flowtop's socket, and a libFuzzer target may not exit. This definition interposes
// the library's own (its call goes through the PLT; see CMakeLists.txt) and abandons the input.
// Only C frames and trivially destructible C++ locals lie between the setjmp and this longjmp.
extern "C" [[noreturn]] void __abi_breakage(const char*, int, const char*) {
    std::longjmp(abi_breakage_exit, 1);
}

namespace {

void fail(const char* what) {
    std::fprintf(stderr, "ct_parser_fuzz: %s\n", what);
    std::abort();
}

bool has_ports(std::uint8_t proto) {
    return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE ||
           proto == IPPROTO_SCTP || proto == IPPROTO_DCCP;
}

std::uint32_t v4_network_order(const Addr& a) {
    std::uint32_t v = 0;
    std::memcpy(&v, a.bytes.data(), sizeof v);
    return v;
}

// Builds the conntrack message that says what `r` says, into buf; returns its length.
std::size_t build(const ct::FlowRecord& r, std::vector<std::byte>& buf) {
    using Conntrack = CPtr<nf_conntrack, nfct_destroy>;
    Conntrack ct(nfct_new());
    if (!ct) fail("nfct_new");
    const bool v4 = r.family == Family::ipv4;
    nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, v4 ? AF_INET : AF_INET6);
    nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, r.proto);
    if (v4) {
        nfct_set_attr_u32(ct.get(), ATTR_ORIG_IPV4_SRC, v4_network_order(r.orig.src));
        nfct_set_attr_u32(ct.get(), ATTR_ORIG_IPV4_DST, v4_network_order(r.orig.dst));
        nfct_set_attr_u32(ct.get(), ATTR_REPL_IPV4_SRC, v4_network_order(r.reply.src));
        nfct_set_attr_u32(ct.get(), ATTR_REPL_IPV4_DST, v4_network_order(r.reply.dst));
    } else {
        nfct_set_attr(ct.get(), ATTR_ORIG_IPV6_SRC, r.orig.src.bytes.data());
        nfct_set_attr(ct.get(), ATTR_ORIG_IPV6_DST, r.orig.dst.bytes.data());
        nfct_set_attr(ct.get(), ATTR_REPL_IPV6_SRC, r.reply.src.bytes.data());
        nfct_set_attr(ct.get(), ATTR_REPL_IPV6_DST, r.reply.dst.bytes.data());
    }
    nfct_set_attr_u8(ct.get(), ATTR_REPL_L3PROTO, v4 ? AF_INET : AF_INET6);
    nfct_set_attr_u8(ct.get(), ATTR_REPL_L4PROTO, r.proto);
    if (r.proto == IPPROTO_ICMP || r.proto == IPPROTO_ICMPV6) {
        nfct_set_attr_u8(ct.get(), ATTR_ICMP_TYPE, r.icmp_type);
        nfct_set_attr_u8(ct.get(), ATTR_ICMP_CODE, r.icmp_code);
        nfct_set_attr_u16(ct.get(), ATTR_ICMP_ID, htons(r.icmp_id));
    } else if (has_ports(r.proto)) {
        nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC, htons(r.orig.sport));
        nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_DST, htons(r.orig.dport));
        nfct_set_attr_u16(ct.get(), ATTR_REPL_PORT_SRC, htons(r.reply.sport));
        nfct_set_attr_u16(ct.get(), ATTR_REPL_PORT_DST, htons(r.reply.dport));
    }
    if (r.proto == IPPROTO_TCP && r.tcp_state != ct::k_no_tcp_state)
        nfct_set_attr_u8(ct.get(), ATTR_TCP_STATE, r.tcp_state);
    if (r.has_status) nfct_set_attr_u32(ct.get(), ATTR_STATUS, r.status);
    nfct_set_attr_u32(ct.get(), ATTR_MARK, r.mark);
    nfct_set_attr_u16(ct.get(), ATTR_ZONE, r.zone);

    buf.assign(MNL_SOCKET_BUFFER_SIZE, std::byte{0});
    auto* nlh = mnl_nlmsg_put_header(buf.data());
    const bool destroyed = r.kind == ct::MsgKind::destroyed;
    nlh->nlmsg_type =
        (NFNL_SUBSYS_CTNETLINK << 8) | (destroyed ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW);
    nlh->nlmsg_flags = r.kind == ct::MsgKind::dump      ? NLM_F_MULTI
                       : r.kind == ct::MsgKind::created ? NLM_F_CREATE | NLM_F_EXCL
                                                        : 0;
    auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfh->nfgen_family = v4 ? AF_INET : AF_INET6;
    nfh->version = NFNETLINK_V0;
    if (nfct_nlmsg_build(nlh, ct.get()) < 0) fail("nfct_nlmsg_build refused a parsed record");
    return nlh->nlmsg_len;
}

// The fields the builder writes, as the parser must read them back.
void check_round_trip(ct::Parser& parser, const ct::FlowRecord& r) {
    std::vector<std::byte> buf;
    const auto len = build(r, buf);
    std::vector<ct::FlowRecord> again;
    auto res = parser.parse(std::span(buf.data(), len),
                            [&](const ct::FlowRecord& x) { again.push_back(x); });
    if (res.flows != 1 || again.size() != 1 || res.errors != 0)
        fail("a rebuilt record does not parse as one flow");
    const auto& b = again.front();
    // Not the id: libnetfilter_conntrack 1.0.9's nfct_nlmsg_build does not write CTA_ID.
    if (b.kind != r.kind || b.family != r.family || b.proto != r.proto)
        fail("round trip changed kind, family or proto");
    if (b.orig.src != r.orig.src || b.orig.dst != r.orig.dst || b.reply.src != r.reply.src ||
        b.reply.dst != r.reply.dst)
        fail("round trip changed an address");
    if (has_ports(r.proto) && (b.orig != r.orig || b.reply != r.reply))
        fail("round trip changed a port");
    if ((r.proto == IPPROTO_ICMP || r.proto == IPPROTO_ICMPV6) &&
        (b.icmp_type != r.icmp_type || b.icmp_code != r.icmp_code || b.icmp_id != r.icmp_id))
        fail("round trip changed the ICMP fields");
    if (r.proto == IPPROTO_TCP && b.tcp_state != r.tcp_state)
        fail("round trip changed the TCP state");
    // The builder always sets IPS_CONFIRMED (a message it builds is for a confirmed entry).
    if (b.has_status != r.has_status || (r.has_status && b.status != (r.status | IPS_CONFIRMED)))
        fail("round trip changed status");
    if (b.mark != r.mark || b.zone != r.zone) fail("round trip changed mark or zone");
}

void print(const char* who, const ct::FlowRecord& r) {
    std::fprintf(stderr,
                 "%s: id %u kind %d family %d proto %u tcp_state %u status %d/%x counters %d "
                 "%llu/%llu %llu/%llu start %llu stop %llu mark %u zone %u icmp %u/%u/%u "
                 "ports %u>%u %u>%u\n",
                 who, r.id, static_cast<int>(r.kind), static_cast<int>(r.family), r.proto,
                 r.tcp_state, r.has_status, r.status, r.has_counters,
                 static_cast<unsigned long long>(r.orig_counters.packets),
                 static_cast<unsigned long long>(r.orig_counters.bytes),
                 static_cast<unsigned long long>(r.reply_counters.packets),
                 static_cast<unsigned long long>(r.reply_counters.bytes),
                 static_cast<unsigned long long>(r.start_ns),
                 static_cast<unsigned long long>(r.stop_ns), r.mark, r.zone, r.icmp_type,
                 r.icmp_code, r.icmp_id, r.orig.sport, r.orig.dport, r.reply.sport, r.reply.dport);
    std::fprintf(stderr, "  %s %s -> %s, reply %s -> %s\n", who,
                 r.orig.src.to_string(r.family).c_str(), r.orig.dst.to_string(r.family).c_str(),
                 r.reply.src.to_string(r.family).c_str(), r.reply.dst.to_string(r.family).c_str());
}

// Every conntrack message the reference reads, Parser reads the same (it may refuse more:
// a malformed attribute it does not use, where the reference exits; see __abi_breakage).
void check_against_reference(ct::Parser& parser, std::span<const std::byte> buf) {
    // The reference may leave through __abi_breakage on any message: land here, where only
    // trivially destructible locals live.
    if (setjmp(abi_breakage_exit) != 0) return;
    test::for_each_message(buf, [&](const nlmsghdr* nlh, std::size_t) {
        ct::FlowRecord theirs, ours;
        if (nlh->nlmsg_type < NLMSG_MIN_TYPE || !test::reference_parse_message(nlh, theirs)) return;
        if (!parser.parse_message(nlh, ours)) fail("a message the reference reads is refused");
        if (!(ours == theirs)) {
            print("parser", ours);
            print("reference", theirs);
            fail("Parser and the reference read a message differently");
        }
    });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // recv() fills an aligned buffer (netlink headers need 4-byte alignment); the fuzzer's
    // bytes need not be aligned, so copy them as the collector's buffer would hold them.
    std::vector<std::byte> buf(size);
    if (size) std::memcpy(buf.data(), data, size);

    // One parser for the whole run, like the collector's: state carried from one buffer to the
    // next (the reused nf_conntrack, the refused list) is part of what is fuzzed.
    static ct::Parser parser;
    table::FlowTable table;
    std::vector<ct::FlowRecord> records;
    constexpr std::uint64_t now = 1'700'000'000'000'000'000ull;
    table.begin_sweep();
    if (setjmp(abi_breakage_exit) != 0) return 0;
    auto result = parser.parse(buf, [&](const ct::FlowRecord& r) {
        records.push_back(r);
        table.apply(r, now);
    });
    if (result.flows != records.size()) fail("flows count differs from records handed out");
    if (result.flows + result.errors > result.messages) fail("more results than messages");
    if (result.answers > result.messages) fail("more answers than messages");
    for (const auto& refused : parser.refused())
        if (refused.error == 0) fail("a refusal without an error");

    // What the writer does after a dump: rows, rates, sweep end, then drop what is gone.
    table.tick(now + 1'000'000'000);
    table.end_sweep(now + 1'000'000'000);
    std::vector<ct::FlowRecord> busy;
    table.collect_busy(busy, true);
    table.drop_gone();
    if (table.size() > records.size()) fail("more rows than records");

    for (const auto& r : records) check_round_trip(parser, r);
    check_against_reference(parser, buf);
    return 0;
}
