// One notion of "this host's address" for the filter language (dir:in, dir:out) and the process
// attributor (forwarded): they agree on loopback, on this host's addresses and on others.
#include "flowtop/util/local_addresses.hpp"

#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/enrich/proc_attributor.hpp"
#include "flowtop/table/flow_table.hpp"
#include "flowtop/ui/filter_expr.hpp"

using namespace flowtop;

namespace {

// A flow from `client` to `server`; `real_server` differs behind a DNAT (the reply comes from
// it).
ct::FlowRecord flow(std::uint32_t id, const char* client, const char* server,
                    const char* real_server = nullptr) {
    ct::FlowRecord r;
    r.id = id;
    r.kind = ct::MsgKind::created;
    r.proto = IPPROTO_TCP;
    auto c = parse_addr(client), s = parse_addr(server);
    auto rs = parse_addr(real_server ? real_server : server);
    r.family = c->second;
    r.orig.src = c->first;
    r.orig.dst = s->first;
    r.orig.sport = 40000 + static_cast<std::uint16_t>(id);
    r.orig.dport = 9;
    r.reply.src = rs->first;
    r.reply.dst = c->first;
    r.reply.sport = 9;
    r.reply.dport = r.orig.sport;
    return r;
}

bool matches(const std::string& text, const table::FlowRow& row, const LocalAddresses& local) {
    ui::FilterError error;
    auto expr = ui::FilterExpr::parse(text, &error);
    EXPECT_TRUE(error.message.empty()) << error.message;
    table::Snapshot snap;
    snap.strings = std::make_shared<StringPool>();
    return expr.matches(snap, row, &local);
}

table::FlowRow row_of(const ct::FlowRecord& r) {
    table::FlowRow row{};
    row.ct = r;
    return row;
}

// A non-loopback IPv4 address of this namespace, if it has one.
std::string some_own_ipv4() {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return {};
    std::string out;
    for (ifaddrs* a = list; a && out.empty(); a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
        Addr addr = Addr::v4(reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr);
        if (addr.bytes[0] != 127) out = addr.to_string(Family::ipv4);
    }
    freeifaddrs(list);
    return out;
}

}  // namespace

TEST(LocalAddresses, LoopbackIsLocalEvenBeyondTheAddressOfLo) {
    LocalAddresses local;  // no interface addresses at all
    EXPECT_TRUE(local.contains(Family::ipv4, parse_addr("127.0.0.1")->first));
    EXPECT_TRUE(local.contains(Family::ipv4, parse_addr("127.0.0.53")->first));
    EXPECT_TRUE(local.contains(Family::ipv6, parse_addr("::1")->first));
    EXPECT_FALSE(local.contains(Family::ipv6, parse_addr("::2")->first));
    EXPECT_FALSE(local.contains(Family::ipv4, parse_addr("192.0.2.1")->first));
    local.add(Family::ipv4, parse_addr("192.0.2.1")->first);
    local.add(Family::ipv4, parse_addr("192.0.2.1")->first);
    EXPECT_EQ(local.size(), 1u);
    EXPECT_TRUE(local.contains(Family::ipv4, parse_addr("192.0.2.1")->first));
    // The same sixteen bytes in the other family are another address.
    EXPECT_FALSE(local.contains(Family::ipv6, Addr{parse_addr("192.0.2.1")->first}));
}

TEST(LocalAddresses, FilterDirectionAndForwardedAgreeForLoopbackThisHostAndOthers) {
    LocalAddresses local;
    local.add(Family::ipv4, parse_addr("192.0.2.1")->first);
    local.add(Family::ipv6, parse_addr("2001:db8::1")->first);
    struct Case {
        ct::FlowRecord flow;
        bool out, in;
    };
    const std::vector<Case> cases = {
        {flow(1, "127.0.0.2", "127.0.0.3"), true, true},         // loopback, not lo's address
        {flow(2, "::1", "::1"), true, true},                     // IPv6 loopback
        {flow(3, "192.0.2.1", "198.51.100.7"), true, false},     // this host, outgoing
        {flow(4, "198.51.100.7", "192.0.2.1"), false, true},     // this host, incoming
        {flow(5, "2001:db8::1", "2001:db8::9"), true, false},    // this host, IPv6
        {flow(6, "198.51.100.7", "203.0.113.9"), false, false},  // routed through
        // A port forward: our address is only the DNAT's, the server is another host.
        {flow(7, "198.51.100.7", "192.0.2.1", "203.0.113.9"), false, false},
    };
    for (const auto& c : cases) {
        const auto row = row_of(c.flow);
        const FlowEnds ends = local.ends(c.flow.family, c.flow.orig.src, c.flow.reply.src);
        const bool out = matches("dir:out", row, local), in = matches("dir:in", row, local);
        EXPECT_EQ(out, c.out) << "flow " << c.flow.id;
        EXPECT_EQ(in, c.in) << "flow " << c.flow.id;
        // The attributor calls a flow forwarded exactly when the filter says neither in nor out.
        EXPECT_EQ(ends.client, out) << "flow " << c.flow.id;
        EXPECT_EQ(ends.server, in) << "flow " << c.flow.id;
        EXPECT_EQ(ends.forwarded(), !out && !in) << "flow " << c.flow.id;
    }
}

// The real attributor (sock_diag works unprivileged) against the filter, both reading this
// namespace's addresses.
TEST(LocalAddresses, AttributorMarksForwardedWhatTheFilterCallsNeitherInNorOut) {
    enrich::ProcAttributor proc({.watch_new_flows = false});
    proc.add_namespace(0);
    const LocalAddresses local = LocalAddresses::of_current_namespace();
    std::vector<ct::FlowRecord> flows = {flow(1, "127.0.0.2", "127.0.0.3"),
                                         flow(2, "198.51.100.7", "203.0.113.9"),
                                         flow(3, "::1", "::1")};
    const std::string own = some_own_ipv4();
    if (!own.empty()) flows.push_back(flow(4, own.c_str(), "203.0.113.9"));
    table::FlowTable table;
    StringPool strings;
    for (const auto& f : flows) table.apply(f, 1);
    std::uint64_t now = 1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline && proc.stats().forwarded.load() == 0) {
        table::tick_with(proc, table, strings, ++now);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Let the local ones settle too (no socket holds them: they stay unattributed).
    for (int i = 0; i < 5; ++i) {
        table::tick_with(proc, table, strings, ++now);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(proc.stats().forwarded.load(), 1u);
    for (const auto& f : flows) {
        const table::FlowRow* row = table.find(ct::flow_key(f));
        ASSERT_NE(row, nullptr);
        const bool neither = !matches("dir:out", *row, local) && !matches("dir:in", *row, local);
        EXPECT_EQ(row->forwarded, neither) << "flow " << f.id;
        EXPECT_EQ(matches("dir:fwd", *row, local), neither) << "flow " << f.id;
    }
}
