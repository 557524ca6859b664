// libFuzzer target: the filter language. Any text either parses or yields an error whose column
// lies within the text; a parsed filter is matched against a few rows of every kind (IPv4 and
// IPv6, TCP, UDP, ICMP, named and nameless, local and forwarded), and its copy matches alike.
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "flowtop/ui/filter_expr.hpp"

using namespace flowtop;

namespace {

void fail(const char* what) {
    std::fprintf(stderr, "filter_expr_fuzz: %s\n", what);
    std::abort();
}

struct Rows {
    table::Snapshot snap;
    std::shared_ptr<StringPool> pool = std::make_shared<StringPool>();
    std::vector<table::FlowRow> rows;
    ui::LocalAddresses local;

    table::FlowRow flow(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport,
                        std::uint8_t proto) {
        table::FlowRow r{};
        auto s = parse_addr(src), d = parse_addr(dst);
        if (!s || !d) fail("bad fixture address");
        r.ct.family = s->second;
        r.ct.proto = proto;
        r.ct.orig = {s->first, d->first, sport, dport};
        r.ct.reply = {d->first, s->first, dport, sport};
        return r;
    }

    Rows() {
        snap.strings = pool;
        auto web = flow("192.0.2.1", "198.51.100.7", 40000, 443, IPPROTO_TCP);
        web.ct.tcp_state = 3;  // ESTABLISHED
        web.dst_name = pool->intern("www.example.net");
        web.service = pool->intern("https");
        web.dst_country = pool->intern("NL");
        web.comm = pool->intern("curl");
        web.user = pool->intern("alice");
        web.pid = 4242;
        rows.push_back(web);

        auto dns = flow("2001:db8::2", "2001:db8:1::53", 5353, 53, IPPROTO_UDP);
        dns.service = pool->intern("domain");
        dns.netns = pool->intern("ns-a");
        rows.push_back(dns);

        auto ping = flow("203.0.113.9", "192.0.2.1", 0, 0, IPPROTO_ICMP);
        ping.ct.icmp_type = 8;
        ping.forwarded = true;
        ping.closed = true;
        rows.push_back(ping);

        auto bare = flow("198.51.100.200", "203.0.113.1", 1, 65535, 132 /* SCTP */);
        bare.ct.tcp_state = ct::k_no_tcp_state;
        rows.push_back(bare);

        local.add(Family::ipv4, parse_addr("192.0.2.1")->first);
        local.add(Family::ipv6, parse_addr("2001:db8::2")->first);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const Rows fixture;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    ui::FilterError error;
    auto expr = ui::FilterExpr::parse(text, &error);
    if (!error.message.empty()) {
        if (error.column > text.size()) fail("error column beyond the end of the text");
        return 0;
    }
    const auto copy = expr;
    for (const auto& row : fixture.rows) {
        const bool plain = expr.matches(fixture.snap, row);
        const bool with_local = expr.matches(fixture.snap, row, &fixture.local);
        if (copy.matches(fixture.snap, row) != plain ||
            copy.matches(fixture.snap, row, &fixture.local) != with_local)
            fail("a copied filter matches differently");
        if (expr.empty() && !plain) fail("an empty filter rejected a row");
    }
    return 0;
}
