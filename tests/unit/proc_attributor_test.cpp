// One attributor for several namespaces: requests go to the sock_diag socket and addresses of
// their flow's source, and a removed namespace is served no more. Both sources are this test's
// own namespace here (no privilege needed); tests/netns/all_netns_test.cpp runs real ones.
#include "flowtop/enrich/proc_attributor.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "flowtop/table/flow_table.hpp"
#include "flowtop/util/handle.hpp"

using namespace flowtop;

namespace {

// A connected TCP pair on loopback, held open by this process.
struct LoopbackPair {
    UniqueFd listener, client, server;
    std::uint16_t server_port = 0, client_port = 0;
    LoopbackPair() {
        listener.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            listen(listener.get(), 4) != 0 ||
            getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
            return;
        server_port = ntohs(a.sin_port);
        client.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
        server.reset(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        sockaddr_in c{};
        len = sizeof c;
        getsockname(client.get(), reinterpret_cast<sockaddr*>(&c), &len);
        client_port = ntohs(c.sin_port);
    }
};

ct::FlowRecord flow(std::uint16_t source, std::uint32_t id, const char* src, const char* dst,
                    std::uint16_t sport, std::uint16_t dport) {
    ct::FlowRecord r;
    r.source = source;
    r.id = id;
    r.kind = ct::MsgKind::created;
    r.proto = IPPROTO_TCP;
    r.family = Family::ipv4;
    r.orig.src = parse_addr(src)->first;
    r.orig.dst = parse_addr(dst)->first;
    r.orig.sport = sport;
    r.orig.dport = dport;
    r.reply.src = r.orig.dst;
    r.reply.dst = r.orig.src;
    r.reply.sport = dport;
    r.reply.dport = sport;
    return r;
}

// Ticks until `done` or about five seconds.
template <typename F>
void tick_until(enrich::ProcAttributor& proc, table::FlowTable& table, StringPool& strings,
                std::uint64_t& now, F done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        table::tick_with(proc, table, strings, ++now);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

TEST(ProcAttributor, RoutesEachSourceToItsNamespaceAndStopsServingARemovedOne) {
    LoopbackPair pair;
    ASSERT_NE(pair.client_port, 0) << "no loopback TCP here";
    enrich::ProcAttributor proc({.watch_new_flows = false});
    proc.add_namespace(0);
    proc.add_namespace(3);  // a second source; its sockets are opened here too
    table::FlowTable table;
    StringPool strings;
    std::uint64_t now = 1;

    // Source 3: the test's own connection, and a flow routed through.
    const auto mine = flow(3, 1, "127.0.0.1", "127.0.0.1", pair.client_port, pair.server_port);
    const auto routed = flow(3, 2, "198.51.100.7", "203.0.113.9", 40000, 443);
    // Source 5 was never added: nothing is asked for it.
    const auto stranger = flow(5, 3, "198.51.100.7", "203.0.113.9", 40001, 443);
    for (const auto& f : {mine, routed, stranger}) table.apply(f, now);
    auto row = [&](const ct::FlowRecord& f) { return table.find(ct::flow_key(f)); };
    tick_until(proc, table, strings, now,
               [&] { return row(mine)->pid != 0 && row(routed)->forwarded; });
    EXPECT_EQ(row(mine)->pid, static_cast<std::uint32_t>(getpid()));
    EXPECT_EQ(strings.get(row(mine)->comm).empty(), false);
    EXPECT_TRUE(row(routed)->forwarded);
    EXPECT_FALSE(row(stranger)->forwarded);
    EXPECT_EQ(row(stranger)->pid, 0u);
    // Decided for the two it served (JSON true / false), undecided (null) for the stranger.
    EXPECT_TRUE(row(mine)->forwarded_known);
    EXPECT_TRUE(row(routed)->forwarded_known);
    EXPECT_FALSE(row(stranger)->forwarded_known);

    // Once source 3 is removed its new flows are left alone; source 0 is still served.
    proc.remove_namespace(3);
    const auto late = flow(3, 4, "198.51.100.7", "203.0.113.9", 40002, 443);
    const auto home = flow(0, 5, "198.51.100.7", "203.0.113.9", 40003, 443);
    table.apply(late, now);
    table.apply(home, now);
    tick_until(proc, table, strings, now, [&] { return row(home)->forwarded; });
    for (int i = 0; i < 5; ++i) table::tick_with(proc, table, strings, ++now);
    EXPECT_TRUE(row(home)->forwarded);
    EXPECT_FALSE(row(late)->forwarded);
    EXPECT_EQ(proc.stats().forwarded.load(), 2u);
}
