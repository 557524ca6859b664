// The parser against netlink bytes a real kernel sent (tests/data/*.nl, recorded in a namespace
// with a 100 kB TCP transfer over IPv4, 20 kB over IPv6, a UDP datagram deleted with
// `conntrack -D`, and one ping each over IPv4 and IPv6).
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>

#include "flowtop/ct/parser.hpp"
#include "recorded.hpp"

using namespace flowtop;
using flowtop::ct::FlowRecord;
using flowtop::ct::MsgKind;

namespace {
std::vector<FlowRecord> parse_all(const std::string& file, ct::ParseResult* total = nullptr) {
    ct::Parser parser;
    std::vector<FlowRecord> out;
    for (const auto& d : test::load_datagrams(file)) {
        auto r = parser.parse(d, [&](const FlowRecord& rec) { out.push_back(rec); });
        if (total) {
            total->messages += r.messages;
            total->flows += r.flows;
            total->errors += r.errors;
            total->done |= r.done;
        }
    }
    return out;
}

const FlowRecord* find(const std::vector<FlowRecord>& v, std::uint8_t proto, Family fam) {
    for (const auto& r : v)
        if (r.proto == proto && r.family == fam) return &r;
    return nullptr;
}
}  // namespace

TEST(Parser, DumpYieldsEveryFlowWithBothDirectionsCounters) {
    ct::ParseResult total;
    auto flows = parse_all("dump.nl", &total);
    ASSERT_EQ(flows.size(), 4u);
    EXPECT_TRUE(total.done);
    EXPECT_EQ(total.errors, 0u);
    for (const auto& f : flows) EXPECT_EQ(f.kind, MsgKind::dump);

    const auto* tcp4 = find(flows, IPPROTO_TCP, Family::ipv4);
    ASSERT_NE(tcp4, nullptr);
    EXPECT_EQ(tcp4->orig.src.to_string(Family::ipv4), "198.51.100.2");
    EXPECT_EQ(tcp4->orig.dst.to_string(Family::ipv4), "198.51.100.1");
    EXPECT_EQ(tcp4->orig.dport, 5001);
    EXPECT_EQ(tcp4->reply.src.to_string(Family::ipv4), "198.51.100.1");
    EXPECT_EQ(tcp4->reply.sport, 5001);
    EXPECT_EQ(tcp4->reply.dport, tcp4->orig.sport);
    ASSERT_TRUE(tcp4->has_counters);
    EXPECT_EQ(tcp4->orig_counters.bytes, 101048u);  // 100,000 payload bytes plus headers
    EXPECT_EQ(tcp4->orig_counters.packets, 20u);
    EXPECT_EQ(tcp4->reply_counters.bytes, 788u);
    EXPECT_EQ(tcp4->reply_counters.packets, 15u);
    EXPECT_STREQ(ct::tcp_state_name(tcp4->tcp_state), "TIME_WAIT");
    EXPECT_NE(tcp4->start_ns, 0u);

    const auto* tcp6 = find(flows, IPPROTO_TCP, Family::ipv6);
    ASSERT_NE(tcp6, nullptr);
    EXPECT_EQ(tcp6->orig.dst.to_string(Family::ipv6), "2001:db8::1");
    EXPECT_EQ(tcp6->orig.dport, 5002);
    EXPECT_EQ(tcp6->orig_counters.bytes, 20584u);
    EXPECT_EQ(tcp6->reply_counters.bytes, 440u);

    const auto* icmp = find(flows, IPPROTO_ICMP, Family::ipv4);
    ASSERT_NE(icmp, nullptr);
    EXPECT_EQ(icmp->icmp_type, 8);
    EXPECT_EQ(icmp->orig.sport, 0);
    EXPECT_EQ(icmp->orig_counters.bytes, 84u);

    const auto* icmp6 = find(flows, IPPROTO_ICMPV6, Family::ipv6);
    ASSERT_NE(icmp6, nullptr);
    EXPECT_EQ(icmp6->icmp_type, 128);
    EXPECT_EQ(icmp6->reply_counters.bytes, 104u);
}

TEST(Parser, EventsTellNewUpdateAndDestroyApart) {
    auto events = parse_all("events.nl");
    ASSERT_FALSE(events.empty());
    std::map<std::uint32_t, std::vector<const FlowRecord*>> by_id;
    for (const auto& e : events) by_id[e.id].push_back(&e);
    for (const auto& [id, list] : by_id) {
        // The kernel announces a flow before anything else about it.
        EXPECT_EQ(list.front()->kind, MsgKind::created) << id;
        for (std::size_t i = 1; i < list.size(); ++i) EXPECT_NE(list[i]->kind, MsgKind::created);
    }
    const auto* tcp4 = find(events, IPPROTO_TCP, Family::ipv4);
    ASSERT_NE(tcp4, nullptr);
    EXPECT_STREQ(ct::tcp_state_name(tcp4->tcp_state), "SYN_SENT");
    EXPECT_FALSE(tcp4->has_counters);  // NEW carries no counters; dumps and DESTROY do

    // Only DESTROY brings the final counters of a flow.
    const FlowRecord* destroy = nullptr;
    for (const auto& e : events)
        if (e.kind == MsgKind::destroyed) destroy = &e;
    ASSERT_NE(destroy, nullptr);
    EXPECT_EQ(destroy->proto, IPPROTO_UDP);
    EXPECT_EQ(destroy->orig.dport, 53);
    ASSERT_TRUE(destroy->has_counters);
    EXPECT_EQ(destroy->orig_counters.bytes, 31u);
    EXPECT_EQ(destroy->orig_counters.packets, 1u);
    EXPECT_EQ(destroy->reply_counters.packets, 0u);
    EXPECT_NE(destroy->stop_ns, 0u);
}

TEST(Parser, TruncatedAndGarbageBytesAreSkippedNotCrashed) {
    auto dump = test::load_datagrams("dump.nl");
    ASSERT_FALSE(dump.empty());
    ct::Parser parser;
    std::size_t seen = 0;
    // Every prefix of a real datagram: never a crash, never more flows than whole messages.
    for (std::size_t n = 0; n <= dump[0].size(); n += 7) {
        auto r = parser.parse(std::span(dump[0].data(), n), [&](const FlowRecord&) { ++seen; });
        EXPECT_LE(r.flows, 4u);
    }
    std::vector<std::byte> garbage(512);
    for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = std::byte(i * 37 + 11);
    auto r = parser.parse(garbage, [&](const FlowRecord&) { ++seen; });
    EXPECT_EQ(r.flows, 0u);
}

TEST(Parser, NamesFollowTheKernelsEnums) {
    EXPECT_STREQ(ct::proto_name(IPPROTO_TCP), "tcp");
    EXPECT_STREQ(ct::proto_name(IPPROTO_ICMPV6), "icmpv6");
    EXPECT_STREQ(ct::proto_name(IPPROTO_SCTP), "sctp");
    EXPECT_STREQ(ct::proto_name(IPPROTO_DCCP), "dccp");
    EXPECT_EQ(ct::proto_name(250), nullptr);
    EXPECT_STREQ(ct::tcp_state_name(3), "ESTABLISHED");
    EXPECT_EQ(ct::status_names(0xe), "SEEN_REPLY,ASSURED,CONFIRMED");
    EXPECT_EQ(ct::status_names(0), "");
    EXPECT_TRUE(ct::tcp_state_ended(7));
    EXPECT_FALSE(ct::tcp_state_ended(3));
}
