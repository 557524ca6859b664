#include "flowtop/ui/filter_expr.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

using namespace flowtop;
using ui::FilterError;
using ui::FilterExpr;

namespace {

struct Fixture {
    table::Snapshot snap;
    std::shared_ptr<StringPool> pool = std::make_shared<StringPool>();
    Fixture() { snap.strings = pool; }

    table::FlowRow flow(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport,
                        std::uint8_t proto = IPPROTO_TCP) {
        table::FlowRow r{};
        auto s = parse_addr(src), d = parse_addr(dst);
        r.ct.family = s->second;
        r.ct.proto = proto;
        r.ct.orig.src = s->first;
        r.ct.orig.dst = d->first;
        r.ct.orig.sport = sport;
        r.ct.orig.dport = dport;
        r.ct.reply.src = d->first;
        r.ct.reply.dst = s->first;
        r.ct.reply.sport = dport;
        r.ct.reply.dport = sport;
        r.ct.tcp_state = 3;
        return r;
    }
};

bool matches(const std::string& expr, const Fixture& f, const table::FlowRow& r,
             const ui::LocalAddresses* local = nullptr) {
    FilterError err;
    auto e = FilterExpr::parse(expr, &err);
    EXPECT_TRUE(err.message.empty()) << expr << ": " << err.message;
    return e.matches(f.snap, r, local);
}

FilterError error_of(const std::string& expr) {
    FilterError err;
    FilterExpr::parse(expr, &err);
    return err;
}

}  // namespace

TEST(FilterExpr, EmptyMatchesEverything) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    EXPECT_TRUE(matches("", f, r));
    EXPECT_TRUE(matches("   ", f, r));
}

TEST(FilterExpr, HostByAddressAndCidr) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    EXPECT_TRUE(matches("host:198.51.100.7", f, r));
    EXPECT_TRUE(matches("host:198.51.100.0/24", f, r));
    EXPECT_TRUE(matches("host:192.0.2.0/24", f, r));
    EXPECT_FALSE(matches("host:203.0.113.0/24", f, r));
    EXPECT_FALSE(matches("host:2001:db8::/32", f, r));
    auto r6 = f.flow("2001:db8::2", "2001:db8:1::5", 1, 2);
    EXPECT_TRUE(matches("host:2001:db8:1::/48", f, r6));
    EXPECT_FALSE(matches("host:2001:db8:2::/48", f, r6));
}

TEST(FilterExpr, HostByName) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    r.dst_name = f.pool->intern("www.example.net");
    EXPECT_TRUE(matches("host:example", f, r));
    EXPECT_FALSE(matches("host:example.org", f, r));
}

TEST(FilterExpr, PortsRangesAndServices) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 5060, IPPROTO_UDP);
    r.service = f.pool->intern("sip");
    EXPECT_TRUE(matches("port:5060", f, r));
    EXPECT_TRUE(matches("port:sip", f, r));
    EXPECT_TRUE(matches("port:39000-41000", f, r));
    EXPECT_FALSE(matches("port:10000-20000", f, r));
    EXPECT_TRUE(matches("port:5060 or port:10000-20000", f, r));
}

TEST(FilterExpr, BooleanCombinations) {
    Fixture f;
    auto ssh = f.flow("192.0.2.1", "198.51.100.7", 40000, 22);
    auto web = f.flow("192.0.2.1", "198.51.100.8", 40001, 443);
    const std::string e = "host:198.51.100.0/24 and not port:22";
    EXPECT_FALSE(matches(e, f, ssh));
    EXPECT_TRUE(matches(e, f, web));
    EXPECT_TRUE(matches("(port:22 or port:443) proto:tcp", f, web));
    EXPECT_FALSE(matches("not (port:22 or port:443)", f, web));
    EXPECT_TRUE(matches("proto:tcp family:ipv4 state:established", f, web));
    EXPECT_FALSE(matches("proto:udp", f, web));
    EXPECT_FALSE(matches("family:6", f, web));
}

TEST(FilterExpr, FreeTextSearchesShownFields) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    r.comm = f.pool->intern("curl");
    r.dst_country = f.pool->intern("NL");
    EXPECT_TRUE(matches("curl", f, r));
    EXPECT_TRUE(matches("CURL", f, r));
    EXPECT_TRUE(matches("100.7", f, r));
    EXPECT_TRUE(matches("443", f, r));
    EXPECT_TRUE(matches("cc:nl", f, r));
    EXPECT_TRUE(matches("proc:cur", f, r));
    EXPECT_FALSE(matches("wget", f, r));
}

TEST(FilterExpr, NetnsMatchesTheNamespaceLabel) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    r.netns = f.pool->intern("docker:0123456789ab");
    EXPECT_TRUE(matches("netns:docker", f, r));
    EXPECT_TRUE(matches("netns:0123456789AB", f, r));
    EXPECT_FALSE(matches("netns:blue", f, r));
    EXPECT_TRUE(matches("0123456789ab", f, r));  // free text too
}

TEST(FilterExpr, DirectionNeedsTheLocalAddresses) {
    Fixture f;
    auto out = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    ui::LocalAddresses local;
    local.add(Family::ipv4, parse_addr("192.0.2.1")->first);
    EXPECT_TRUE(matches("dir:out", f, out, &local));
    EXPECT_FALSE(matches("dir:in", f, out, &local));
    out.forwarded = true;
    EXPECT_TRUE(matches("dir:fwd", f, out, &local));
}

TEST(FilterExpr, ErrorsSayWhereTheyAre) {
    auto e = error_of("port:22 and");
    EXPECT_NE(e.message.find("ends too early"), std::string::npos);
    EXPECT_EQ(e.column, 11u);
    e = error_of("(port:22 or proto:udp");
    EXPECT_NE(e.message.find("missing ')'"), std::string::npos);
    EXPECT_EQ(e.column, 0u);
    e = error_of("port:22 colour:red");
    EXPECT_NE(e.message.find("unknown field 'colour:'"), std::string::npos);
    EXPECT_EQ(e.column, 8u);
    e = error_of("port:70000");
    EXPECT_EQ(e.column, 5u);
    e = error_of("host:198.51.100.0/33");
    EXPECT_FALSE(e.message.empty());
    e = error_of("port:22 )");
    EXPECT_EQ(e.column, 8u);
    e = error_of("or port:22");
    EXPECT_EQ(e.column, 0u);
}

TEST(FilterExpr, AsnAndOrgOfTheDestination) {
    Fixture f;
    auto r = f.flow("192.0.2.1", "198.51.100.7", 40000, 443);
    r.dst_asn = 64500;
    r.dst_org = f.pool->intern("Example Transit B.V.");
    EXPECT_TRUE(matches("asn:64500", f, r));
    EXPECT_TRUE(matches("asn:AS64500", f, r));
    EXPECT_TRUE(matches("asn:as064500", f, r));
    EXPECT_FALSE(matches("asn:6450", f, r));
    EXPECT_TRUE(matches("org:transit", f, r));
    EXPECT_FALSE(matches("org:google", f, r));
    EXPECT_TRUE(matches("not asn:15169 and org:example", f, r));
    auto unknown = f.flow("192.0.2.1", "198.51.100.8", 40000, 443);  // no ASN known
    EXPECT_FALSE(matches("asn:0", f, unknown));
    EXPECT_FALSE(matches("org:example", f, unknown));
    auto e = error_of("asn:google");
    EXPECT_NE(e.message.find("AS number"), std::string::npos) << e.message;
    EXPECT_EQ(e.column, 4u);
}

namespace {
// 192.0.2.1:40000 -> 203.0.113.9:443 masqueraded by a router whose WAN address is
// 198.51.100.254 (source port 61000 after NAT), and 203.0.113.9:50000 -> 198.51.100.254:8080
// port-forwarded to 192.0.2.10:80, as the kernel's tuples and status bits say.
table::FlowRow masqueraded(Fixture& f) {
    auto r = f.flow("192.0.2.1", "203.0.113.9", 40000, 443);
    r.ct.reply.dst = parse_addr("198.51.100.254")->first;
    r.ct.reply.dport = 61000;
    r.ct.has_status = true;
    r.ct.status = ct::k_status_src_nat;
    return r;
}
table::FlowRow forwarded_port(Fixture& f) {
    auto r = f.flow("203.0.113.9", "198.51.100.254", 50000, 8080);
    r.ct.reply.src = parse_addr("192.0.2.10")->first;
    r.ct.reply.sport = 80;
    r.ct.has_status = true;
    r.ct.status = ct::k_status_dst_nat;
    return r;
}
}  // namespace

TEST(FilterExpr, NatSelectsByWhatWasTranslated) {
    Fixture f;
    const auto snat = masqueraded(f), dnat = forwarded_port(f);
    auto plain = f.flow("192.0.2.1", "203.0.113.9", 40001, 443);
    auto both = masqueraded(f);
    both.ct.status |= ct::k_status_dst_nat;
    EXPECT_TRUE(matches("nat:snat", f, snat));
    EXPECT_FALSE(matches("nat:snat", f, dnat));
    EXPECT_TRUE(matches("nat:dnat", f, dnat));
    EXPECT_FALSE(matches("nat:dnat", f, snat));
    EXPECT_TRUE(matches("nat:snat and nat:dnat", f, both));
    EXPECT_TRUE(matches("nat:both", f, both));
    EXPECT_FALSE(matches("nat:both", f, snat));
    EXPECT_TRUE(matches("nat:none", f, plain));
    EXPECT_FALSE(matches("nat:none", f, snat));
    EXPECT_TRUE(matches("NAT:SNAT", f, snat));
    // Without status bits (an event that left them out) the tuples tell.
    auto untold = snat;
    untold.ct.has_status = false;
    EXPECT_TRUE(matches("nat:snat", f, untold));
    untold = plain;
    untold.ct.has_status = false;
    EXPECT_TRUE(matches("nat:none", f, untold));
}

TEST(FilterExpr, HostMatchesEitherTuple) {
    Fixture f;
    const auto snat = masqueraded(f), dnat = forwarded_port(f);
    // The WAN address a masqueraded flow left with, the internal target of a port forward.
    EXPECT_TRUE(matches("host:198.51.100.254", f, snat));
    EXPECT_TRUE(matches("host:192.0.2.10", f, dnat));
    EXPECT_TRUE(matches("host:192.0.2.0/24", f, dnat));
    EXPECT_TRUE(matches("198.51.100.254", f, snat));  // free text too
    EXPECT_FALSE(matches("host:192.0.2.10", f, snat));
}

TEST(FilterExpr, NatRejectsOtherValuesAtTheirColumn) {
    auto e = error_of("tcp and nat:masq");
    EXPECT_NE(e.message.find("nat: takes snat, dnat, both or none"), std::string::npos);
    EXPECT_EQ(e.column, 12u);
    e = error_of("nat:");
    EXPECT_NE(e.message.find("needs a value"), std::string::npos);
}

TEST(FilterExpr, StatusSelectsByTheConntrackStatusBits) {
    Fixture f;
    auto unreplied = f.flow("192.0.2.11", "203.0.113.5", 40000, 20000, IPPROTO_UDP);
    unreplied.ct.has_status = true;
    unreplied.ct.status = 0x8;  // CONFIRMED only
    auto replied = unreplied;
    replied.ct.status |= 0x2;  // SEEN_REPLY
    auto assured = replied;
    assured.ct.status |= 0x4;  // ASSURED
    auto offloaded = assured;
    offloaded.ct.status |= ct::k_status_offload;
    auto hw = assured;
    hw.ct.status |= ct::k_status_hw_offload;
    EXPECT_TRUE(matches("status:unreplied", f, unreplied));
    EXPECT_FALSE(matches("status:unreplied", f, replied));
    EXPECT_TRUE(matches("status:replied", f, replied));
    EXPECT_TRUE(matches("status:replied", f, assured));
    EXPECT_FALSE(matches("status:replied", f, unreplied));
    EXPECT_TRUE(matches("status:assured", f, assured));
    EXPECT_FALSE(matches("status:assured", f, replied));
    EXPECT_TRUE(matches("status:offload", f, offloaded));
    EXPECT_TRUE(matches("status:offload", f, hw));
    EXPECT_FALSE(matches("status:offload", f, assured));
    EXPECT_TRUE(matches("STATUS:UNREPLIED and proto:udp", f, unreplied));
    EXPECT_TRUE(matches("not status:unreplied", f, assured));
    // An event without the status bits is none of them.
    auto untold = unreplied;
    untold.ct.has_status = false;
    EXPECT_FALSE(matches("status:unreplied", f, untold));
    EXPECT_FALSE(matches("status:replied", f, untold));
}

TEST(FilterExpr, StatusRejectsOtherValuesAtTheirColumn) {
    auto e = error_of("udp and status:syn_sent");
    EXPECT_NE(e.message.find("status: takes unreplied, replied, assured or offload"),
              std::string::npos)
        << e.message;
    EXPECT_EQ(e.column, 15u);
    e = error_of("status:");
    EXPECT_NE(e.message.find("needs a value"), std::string::npos);
}
