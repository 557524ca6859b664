// The parser against netlink bytes a real kernel sent (tests/data/*.nl, recorded in a namespace
// with a 100 kB TCP transfer over IPv4, 20 kB over IPv6, a UDP datagram deleted with
// `conntrack -D`, and one ping each over IPv4 and IPv6).
#include "flowtop/ct/parser.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <map>

#include "recorded.hpp"
#include "reference_ct_parser.hpp"

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

namespace {
// Writes one conntrack NEW message by hand, attribute by attribute, so a test can leave out
// what the kernel always sends.
class CtMessage {
  public:
    explicit CtMessage(std::uint8_t family) {
        put(nlmsghdr{0, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, 0, 1, 0});
        put(nfgenmsg{family, NFNETLINK_V0, 0});
    }
    void begin(std::uint16_t type) {
        open_.push_back(bytes_.size());
        put(nlattr{0, static_cast<std::uint16_t>(type | NLA_F_NESTED)});
    }
    void end() {
        auto at = open_.back();
        open_.pop_back();
        auto len = static_cast<std::uint16_t>(bytes_.size() - at);
        std::memcpy(bytes_.data() + at, &len, sizeof len);
    }
    void attr(std::uint16_t type, const void* data, std::size_t size) {
        put(nlattr{static_cast<std::uint16_t>(NLA_HDRLEN + size), type});
        const auto* p = static_cast<const std::byte*>(data);
        bytes_.insert(bytes_.end(), p, p + size);
        bytes_.resize(NLA_ALIGN(bytes_.size()));
    }
    // An IPv6 tuple of documentation addresses, TCP.
    void tuple6(std::uint16_t type) {
        begin(type);
        begin(CTA_TUPLE_IP);
        attr(CTA_IP_V6_SRC, parse_addr("2001:db8::2")->first.bytes.data(), 16);
        attr(CTA_IP_V6_DST, parse_addr("2001:db8::1")->first.bytes.data(), 16);
        end();
        begin(CTA_TUPLE_PROTO);
        std::uint8_t tcp = IPPROTO_TCP;
        attr(CTA_PROTO_NUM, &tcp, 1);
        end();
        end();
    }
    std::vector<std::byte> bytes() const {
        auto out = bytes_;
        auto len = static_cast<std::uint32_t>(out.size());
        std::memcpy(out.data(), &len, sizeof len);
        return out;
    }

  private:
    template <typename T>
    void put(const T& v) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof v);
    }
    std::vector<std::byte> bytes_;
    std::vector<std::size_t> open_;
};
}  // namespace

// Found by tests/fuzz/ct_parser_fuzz: an IPv6 message without its addresses made the parser
// copy 16 bytes from the null pointer nfct_get_attr returns for an unset attribute (SIGSEGV).
TEST(Parser, MessageWithoutBothTuplesIsAnErrorNotACrash) {
    ct::Parser parser;
    std::size_t seen = 0;
    auto count = [&](const FlowRecord&) { ++seen; };

    CtMessage bare(AF_INET6);  // no attributes at all
    auto r = parser.parse(bare.bytes(), count);
    EXPECT_EQ(r.messages, 1u);
    EXPECT_EQ(r.errors, 1u);

    CtMessage orig_only(AF_INET6);  // what the fuzzer found: no reply tuple
    orig_only.tuple6(CTA_TUPLE_ORIG);
    r = parser.parse(orig_only.bytes(), count);
    EXPECT_EQ(r.errors, 1u);

    CtMessage v4_bare(AF_INET);  // IPv4 read 0.0.0.0 for every missing address
    r = parser.parse(v4_bare.bytes(), count);
    EXPECT_EQ(r.errors, 1u);
    EXPECT_EQ(seen, 0u);

    CtMessage both(AF_INET6);  // the same message with both tuples parses
    both.tuple6(CTA_TUPLE_ORIG);
    both.tuple6(CTA_TUPLE_REPLY);
    FlowRecord got;
    r = parser.parse(both.bytes(), [&](const FlowRecord& rec) { got = rec; });
    EXPECT_EQ(r.flows, 1u);
    EXPECT_EQ(r.errors, 0u);
    EXPECT_EQ(got.family, Family::ipv6);
    EXPECT_EQ(got.orig.src.to_string(Family::ipv6), "2001:db8::2");
    EXPECT_EQ(got.reply.dst.to_string(Family::ipv6), "2001:db8::1");
}

// Found by tests/fuzz/ct_parser_fuzz: libmnl's mnl_nlmsg_ok compares the length as a signed
// int, so a header claiming 2^31 bytes or more passed and the walk jumped 2 GB past the buffer.
TEST(Parser, HugeMessageLengthEndsTheWalkInsideTheBuffer) {
    CtMessage first(AF_INET6);
    first.tuple6(CTA_TUPLE_ORIG);
    first.tuple6(CTA_TUPLE_REPLY);
    auto bytes = first.bytes();
    const auto whole = bytes.size();
    nlmsghdr huge{0x80000800u, NLMSG_MIN_TYPE, 0, 2, 0};
    bytes.resize(whole + 64);
    std::memcpy(bytes.data() + whole, &huge, sizeof huge);
    ct::Parser parser;
    std::size_t seen = 0;
    auto r = parser.parse(bytes, [&](const FlowRecord&) { ++seen; });
    EXPECT_EQ(r.messages, 1u);
    EXPECT_EQ(seen, 1u);
}

// Found by tests/fuzz/ct_parser_fuzz: -INT_MIN overflowed when the error was negated.
TEST(Parser, ErrorOutsideErrnoRangeIsAProtocolError) {
    struct {
        nlmsghdr nlh;
        nlmsgerr err;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = NLMSG_ERROR;
    msg.err.error = std::numeric_limits<int>::min();
    msg.err.msg.nlmsg_seq = 77;
    std::vector<std::byte> bytes(sizeof msg);
    std::memcpy(bytes.data(), &msg, sizeof msg);
    ct::Parser parser;
    auto r = parser.parse(bytes, [](const FlowRecord&) {});
    EXPECT_EQ(r.netlink_error, EPROTO);
    ASSERT_EQ(parser.refused().size(), 1u);
    EXPECT_EQ(parser.refused()[0].seq, 77u);
    EXPECT_EQ(parser.refused()[0].error, EPROTO);
}

// flowtop reads the attributes itself; libnetfilter_conntrack's reading of the same bytes (the
// reference in tests/support) must come out the same for everything a real kernel sent.
TEST(Parser, ReadsEveryRecordedMessageAsLibnetfilterConntrackDoes) {
    ct::Parser parser;
    std::size_t compared = 0;
    for (const char* file : {"dump.nl", "events.nl"}) {
        for (const auto& d : test::load_datagrams(file)) {
            test::for_each_message(d, [&](const nlmsghdr* nlh, std::size_t offset) {
                FlowRecord theirs, ours;
                const bool they_read = test::reference_parse_message(nlh, theirs);
                EXPECT_EQ(parser.parse_message(nlh, ours), they_read) << file;
                if (they_read) {
                    EXPECT_TRUE(ours == theirs) << file << " message at " << offset;
                    ++compared;
                }
            });
        }
    }
    EXPECT_GE(compared, 10u);
}

// libnetfilter_conntrack calls exit() on an attribute of the wrong size ("ABI breakage"):
// flowtop's own reading skips that one message and goes on.
TEST(Parser, AnAttributeOfTheWrongSizeIsOneSkippedMessage) {
    CtMessage bad(AF_INET6);
    bad.tuple6(CTA_TUPLE_ORIG);
    bad.tuple6(CTA_TUPLE_REPLY);
    const std::uint16_t short_status = 2;  // CTA_STATUS is 4 bytes
    bad.attr(CTA_STATUS, &short_status, sizeof short_status);
    CtMessage good(AF_INET6);
    good.tuple6(CTA_TUPLE_ORIG);
    good.tuple6(CTA_TUPLE_REPLY);
    auto bytes = bad.bytes();
    const auto more = good.bytes();
    bytes.insert(bytes.end(), more.begin(), more.end());
    ct::Parser parser;
    std::size_t seen = 0;
    auto r = parser.parse(bytes, [&](const FlowRecord&) { ++seen; });
    EXPECT_EQ(r.messages, 2u);
    EXPECT_EQ(r.errors, 1u);
    EXPECT_EQ(seen, 1u);
}

// Kernels before 64-bit counters (and some today, for small values) send CTA_COUNTERS32_*.
TEST(Parser, ThirtyTwoBitCountersAreRead) {
    CtMessage m(AF_INET6);
    m.tuple6(CTA_TUPLE_ORIG);
    m.tuple6(CTA_TUPLE_REPLY);
    const std::uint32_t packets = htonl(7), bytes32 = htonl(4200);
    m.begin(CTA_COUNTERS_ORIG);
    m.attr(CTA_COUNTERS32_PACKETS, &packets, 4);
    m.attr(CTA_COUNTERS32_BYTES, &bytes32, 4);
    m.end();
    ct::Parser parser;
    FlowRecord got;
    auto r = parser.parse(m.bytes(), [&](const FlowRecord& rec) { got = rec; });
    ASSERT_EQ(r.flows, 1u);
    EXPECT_TRUE(got.has_counters);
    EXPECT_EQ(got.orig_counters.packets, 7u);
    EXPECT_EQ(got.orig_counters.bytes, 4200u);
    FlowRecord theirs;
    const auto msg = m.bytes();
    ASSERT_TRUE(
        test::reference_parse_message(reinterpret_cast<const nlmsghdr*>(msg.data()), theirs));
    EXPECT_TRUE(got == theirs);
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
