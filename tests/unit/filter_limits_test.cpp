// Filters that a script generates, or someone hostile writes: never a stack overflow, never a
// value that is silently accepted and matches nothing.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "flowtop/ui/filter_expr.hpp"

using namespace flowtop;
using ui::FilterError;
using ui::FilterExpr;

namespace {

FilterError error_of(const std::string& expr) {
    FilterError err;
    FilterExpr::parse(expr, &err);
    return err;
}

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

table::FlowRow tcp_row() {
    table::FlowRow r{};
    r.ct.family = Family::ipv4;
    r.ct.proto = IPPROTO_TCP;
    r.ct.orig.src = parse_addr("192.0.2.1")->first;
    r.ct.orig.dst = parse_addr("198.51.100.7")->first;
    r.ct.orig.sport = 40000;
    r.ct.orig.dport = 443;
    r.ct.tcp_state = 3;
    return r;
}

}  // namespace

TEST(FilterLimits, TwentyThousandTermsParseAndMatchWithoutRecursing) {
    table::Snapshot snap;
    snap.strings = std::make_shared<StringPool>();
    const auto row = tcp_row();
    FilterError err;
    auto all = FilterExpr::parse(repeat("tcp ", 20000), &err);
    ASSERT_TRUE(err.message.empty()) << err.message;
    EXPECT_TRUE(all.matches(snap, row));
    auto any = FilterExpr::parse("udp" + repeat(" or udp", 15000) + " or tcp", &err);
    ASSERT_TRUE(err.message.empty()) << err.message;
    EXPECT_TRUE(any.matches(snap, row));
}

TEST(FilterLimits, DeepNotsAreAnErrorAtTheirColumn) {
    const auto e = error_of(repeat("not ", 32767) + "tcp");
    EXPECT_EQ(e.message, "nested too deep (more than 100 levels of '(' and 'not')");
    EXPECT_EQ(e.column, 400u);  // the 101st `not`
    EXPECT_TRUE(error_of(repeat("not ", 100) + "tcp").message.empty());
}

TEST(FilterLimits, DeepParenthesesAreAnError) {
    const auto e = error_of(repeat("(", 10000) + "tcp" + repeat(")", 10000));
    EXPECT_EQ(e.message, "nested too deep (more than 100 levels of '(' and 'not')");
    EXPECT_EQ(e.column, 100u);
    EXPECT_TRUE(error_of(repeat("(", 50) + "tcp" + repeat(")", 50)).message.empty());
    EXPECT_EQ(error_of(repeat("(", 10000)).message,
              "nested too deep (more than 100 levels of '(' and 'not')");
}

TEST(FilterLimits, AMegabyteExpressionIsAnError) {
    const auto e = error_of(repeat("tcp ", 256 * 1024));
    EXPECT_EQ(e.message, "longer than 262144 characters");
    EXPECT_EQ(e.column, 262144u);
}

TEST(FilterLimits, ValuesATermCannotHoldAreErrorsAtTheirColumn) {
    struct Case {
        const char* expr;
        const char* message;
        std::size_t column;
    };
    const Case cases[] = {
        {"host:999.1.1.1", "'999.1.1.1' is not an IPv4 or IPv6 address", 5},
        {"tcp host:10.0.0.256", "'10.0.0.256' is not an IPv4 or IPv6 address", 9},
        {"host:2001:db8::zz", "'2001:db8::zz' is not an IPv4 or IPv6 address", 5},
        {"port:-1", "bad port or range '-1' (0-65535, low-high)", 5},
        {"port:70000", "bad port or range '70000' (0-65535, low-high)", 5},
        {"port:90-80", "bad port or range '90-80' (0-65535, low-high)", 5},
        {"proto:999",
         "proto: takes a protocol name (tcp udp icmp icmpv6 sctp dccp udplite gre) or a number "
         "0-255",
         6},
        {"proto:bogus",
         "proto: takes a protocol name (tcp udp icmp icmpv6 sctp dccp udplite gre) or a number "
         "0-255",
         6},
        {"state:bogus",
         "state: takes open, closed or a TCP state (none syn_sent syn_recv established fin_wait "
         "close_wait last_ack time_wait close syn_sent2)",
         6},
    };
    for (const auto& c : cases) {
        const auto e = error_of(c.expr);
        EXPECT_EQ(e.message, c.message) << c.expr;
        EXPECT_EQ(e.column, c.column) << c.expr;
    }
    for (const char* fine : {"host:example.org", "host:198.51.100.0/24", "host:2001:db8::1",
                             "port:https", "port:0-65535", "proto:6", "proto:icmpv6", "proto:47",
                             "state:established", "state:TIME_WAIT", "state:closed"})
        EXPECT_TRUE(error_of(fine).message.empty()) << fine << ": " << error_of(fine).message;
}

TEST(FilterLimits, ProtocolNumbersMatchTheNamedProtocol) {
    table::Snapshot snap;
    snap.strings = std::make_shared<StringPool>();
    FilterError err;
    EXPECT_TRUE(FilterExpr::parse("proto:6", &err).matches(snap, tcp_row()));
    EXPECT_FALSE(FilterExpr::parse("proto:17", &err).matches(snap, tcp_row()));
}

TEST(FilterLimits, ErrorsEchoNoControlCharactersAndNoMegabytes) {
    auto e = error_of("\x1b]0;PWN\x07:x");
    EXPECT_EQ(e.message.find('\x1b'), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("\\x1b]0;pwn\\x07"), std::string::npos) << e.message;
    e = error_of(") " + std::string(60000, 'a'));
    EXPECT_LT(e.message.size(), 200u);
}
