#include <gtest/gtest.h>
#include <netinet/in.h>

#include "flowtop/ui/filter_expr.hpp"

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
    local.addrs.push_back(parse_addr("192.0.2.1")->first);
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
