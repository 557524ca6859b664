// Which end of a flow is the LAN client (a router's view), the DHCP lease files that name the
// clients, and the Clients grouping that the live view's tab and batch --group client share.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "flowtop/enrich/dhcp_leases.hpp"
#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/top_renderer.hpp"
#include "flowtop/ui/view_model.hpp"
#include "flowtop/util/text.hpp"

using namespace flowtop;

namespace {

Addr a(const char* text) { return parse_addr(text)->first; }
Family f(const char* text) { return parse_addr(text)->second; }

// A router: LAN 192.0.2.0/24 and 2001:db8:1::/64 (its own .254 and ::ff), WAN 203.0.113.7.
LocalAddresses router() {
    LocalAddresses l;
    l.add(Family::ipv4, a("192.0.2.254"));
    l.add(Family::ipv4, a("203.0.113.7"));
    l.add(Family::ipv6, a("2001:db8:1::ff"));
    l.add_network(*parse_network("192.0.2.0/24"));
    l.add_network(*parse_network("2001:db8:1::/64"));
    return l;
}

// orig src -> dst; the reply from reply_src to reply_dst (NAT when they differ).
table::FlowRow flow(std::uint32_t id, const char* src, const char* dst, const char* reply_src,
                    const char* reply_dst, std::uint64_t orig_bytes, std::uint64_t reply_bytes) {
    table::FlowRow r{};
    r.ct.id = id;
    r.ct.family = f(src);
    r.ct.proto = IPPROTO_TCP;
    r.ct.tcp_state = 3;
    r.ct.orig.src = a(src);
    r.ct.orig.dst = a(dst);
    r.ct.reply.src = a(reply_src);
    r.ct.reply.dst = a(reply_dst);
    r.ct.orig.sport = static_cast<std::uint16_t>(40000 + id);
    r.ct.orig.dport = 443;
    r.ct.has_counters = true;
    r.ct.orig_counters = {10, orig_bytes};
    r.ct.reply_counters = {10, reply_bytes};
    r.rate_known = true;
    r.orig_rate = static_cast<float>(orig_bytes);
    r.reply_rate = static_cast<float>(reply_bytes);
    r.orig_rate_avg[0] = static_cast<float>(orig_bytes) / 2;
    r.reply_rate_avg[0] = static_cast<float>(reply_bytes) / 2;
    return r;
}

std::string write_file(const std::string& name, const std::string& text) {
    const std::string path =
        ::testing::TempDir() + "/flowtop_lan_" + std::to_string(getpid()) + "_" + name;
    std::ofstream(path, std::ios::trunc) << text;
    return path;
}

}  // namespace

TEST(LanClients, NetworksPrivateRangesAndExplicitLans) {
    LocalAddresses l = router();
    EXPECT_TRUE(l.is_lan(Family::ipv4, a("192.0.2.10")));
    EXPECT_TRUE(l.is_lan(Family::ipv4, a("203.0.113.7")));  // this host's own (WAN) address
    EXPECT_FALSE(l.is_lan(Family::ipv4, a("203.0.113.8")));
    EXPECT_FALSE(l.is_lan(Family::ipv4, a("198.51.100.1")));
    EXPECT_TRUE(l.is_lan(Family::ipv4, a("10.1.2.3")));     // RFC 1918
    EXPECT_TRUE(l.is_lan(Family::ipv4, a("172.20.0.1")));   // RFC 1918
    EXPECT_FALSE(l.is_lan(Family::ipv4, a("172.32.0.1")));  // just outside 172.16/12
    EXPECT_TRUE(l.is_lan(Family::ipv6, a("fd00::1")));      // ULA
    EXPECT_TRUE(l.is_lan(Family::ipv6, a("2001:db8:1::5")));
    EXPECT_FALSE(l.is_lan(Family::ipv6, a("2001:db8:2::1")));
    // --lan says it explicitly: the guesses (interface networks, private ranges) give way.
    l.set_lans({*parse_network("198.51.100.0/24")});
    EXPECT_TRUE(l.is_lan(Family::ipv4, a("198.51.100.1")));
    EXPECT_FALSE(l.is_lan(Family::ipv4, a("192.0.2.10")));
    EXPECT_FALSE(l.is_lan(Family::ipv4, a("10.1.2.3")));
    EXPECT_TRUE(l.is_lan(Family::ipv4, a("203.0.113.7")));  // its own stay
    EXPECT_FALSE(parse_network("192.0.2.0/33"));
    EXPECT_FALSE(parse_network("192.0.2.0/"));
    EXPECT_FALSE(parse_network("lan"));
}

TEST(LanClients, MasqueradeIsTheOriginalSourceAndAPortForwardTheInternalServer) {
    const LocalAddresses l = router();
    // Masqueraded: 192.0.2.10 -> 198.51.100.1, the reply to the router's WAN address.
    EXPECT_EQ(l.lan_client(Family::ipv4, a("192.0.2.10"), a("198.51.100.1"), a("198.51.100.1"),
                           a("203.0.113.7")),
              LanEnd::orig_src);
    // Port forward: the outside 198.51.100.1 -> 203.0.113.7:443, DNAT to 192.0.2.20.
    EXPECT_EQ(l.lan_client(Family::ipv4, a("198.51.100.1"), a("203.0.113.7"), a("192.0.2.20"),
                           a("198.51.100.1")),
              LanEnd::reply_src);
    // IPv6 without NAT, each way.
    EXPECT_EQ(l.lan_client(Family::ipv6, a("2001:db8:1::5"), a("2001:db8:2::1"), a("2001:db8:2::1"),
                           a("2001:db8:1::5")),
              LanEnd::orig_src);
    EXPECT_EQ(l.lan_client(Family::ipv6, a("2001:db8:2::1"), a("2001:db8:1::5"), a("2001:db8:1::5"),
                           a("2001:db8:2::1")),
              LanEnd::reply_src);
    // The router itself asking a LAN host: the LAN host is the client of that flow.
    EXPECT_EQ(l.lan_client(Family::ipv4, a("192.0.2.254"), a("192.0.2.10"), a("192.0.2.10"),
                           a("192.0.2.254")),
              LanEnd::reply_src);
    // The router going out on its own: this host is the client.
    EXPECT_EQ(l.lan_client(Family::ipv4, a("203.0.113.7"), a("198.51.100.1"), a("198.51.100.1"),
                           a("203.0.113.7")),
              LanEnd::orig_src);
    // Two outside hosts routed through (no end of ours): none.
    EXPECT_EQ(l.lan_client(Family::ipv4, a("198.51.100.1"), a("198.51.100.2"), a("198.51.100.2"),
                           a("198.51.100.1")),
              LanEnd::none);
}

TEST(LanClients, DnsmasqIscAndNetworkdLeasesNameClients) {
    auto dnsmasq = enrich::parse_leases(
        "1764751200 52:54:00:12:34:56 192.0.2.10 laptop-anna 01:52:54:00:12:34:56\n"
        "1764751200 52:54:00:12:34:57 192.0.2.11 * *\n"
        "duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01\n"
        "1764751200 1234 2001:db8:1::10 phone-ben 00:01:00:01\n");
    ASSERT_EQ(dnsmasq.size(), 2u);
    EXPECT_EQ(dnsmasq[0].name, "laptop-anna");
    EXPECT_EQ(dnsmasq[0].addr, a("192.0.2.10"));
    EXPECT_EQ(dnsmasq[1].name, "phone-ben");
    EXPECT_EQ(dnsmasq[1].family, Family::ipv6);

    auto isc = enrich::parse_leases(
        "# The format of this file is documented in the dhcpd.leases(5) manual page.\n"
        "lease 192.0.2.20 {\n  starts 4 2026/12/03 06:00:00;\n  binding state active;\n"
        "  client-hostname \"printer\";\n}\n"
        "lease 192.0.2.21 {\n  binding state active;\n  client-hostname \"old\";\n}\n"
        "lease 192.0.2.21 {\n  binding state free;\n}\n");
    ASSERT_EQ(isc.size(), 1u);  // the later, free block of .21 takes its name away
    EXPECT_EQ(isc[0].name, "printer");

    auto networkd = enrich::parse_leases(
        "# This is private data. Do not parse.\nADDRESS=192.0.2.30\nHOSTNAME=nas\n");
    ASSERT_EQ(networkd.size(), 1u);
    EXPECT_EQ(networkd[0].name, "nas");
}

TEST(LanClients, LeaseNamesAreUntrustedText) {
    const std::string evil = "\x1b[2J\x1b]0;PWN\x07" + std::string(200, 'x');
    auto leases = enrich::parse_leases("1 52:54:00:00:00:01 192.0.2.10 " + evil + " *\n" +
                                       "1 52:54:00:00:00:02 192.0.2.11 \xe2\x80\xaemal *\n");
    ASSERT_EQ(leases.size(), 2u);
    for (const auto& l : leases) {
        EXPECT_TRUE(is_clean(l.name)) << l.name;
        EXPECT_LE(l.name.size(), enrich::k_lease_name_max);
        EXPECT_EQ(l.name.find('\x1b'), std::string::npos);
    }
    EXPECT_EQ(leases[0].name.rfind("\\x1b[2J", 0), 0u) << leases[0].name;
}

TEST(LanClients, LeaseBookRereadsAFileThatChanged) {
    const std::string path = write_file("dnsmasq.leases", "1 aa 192.0.2.10 laptop-anna *\n");
    enrich::LeaseBook book({path, "/nonexistent/flowtop/leases"});
    EXPECT_TRUE(book.refresh());
    EXPECT_EQ(book.name(Family::ipv4, a("192.0.2.10")), "laptop-anna");
    EXPECT_FALSE(book.refresh());  // unchanged: not re-read
    // Another size: within one clock tick of the first write the mtime may be the same.
    std::ofstream(path, std::ios::trunc) << "1 aa 192.0.2.10 laptop-carla *\n";
    EXPECT_TRUE(book.refresh());
    EXPECT_EQ(book.name(Family::ipv4, a("192.0.2.10")), "laptop-carla");
    std::remove(path.c_str());
    EXPECT_TRUE(book.refresh());
    EXPECT_EQ(book.name(Family::ipv4, a("192.0.2.10")), "");
}

namespace {

table::SnapshotPtr router_frame() {
    auto s = std::make_shared<table::Snapshot>();
    auto pool = std::make_shared<StringPool>();
    s->strings = pool;
    s->stats.seq = 1;
    s->stats.time_ns = 1'800'000'000'000'000'000ull;
    // Two clients behind masquerade, one of them over IPv6 too, and a port forward.
    auto r1 = flow(1, "192.0.2.10", "198.51.100.1", "198.51.100.1", "203.0.113.7", 1000, 50000);
    r1.dst_country = pool->intern("NL");
    auto r2 = flow(2, "192.0.2.10", "198.51.100.2", "198.51.100.2", "203.0.113.7", 200, 3000);
    r2.dst_country = pool->intern("JP");
    auto r3 = flow(3, "192.0.2.11", "198.51.100.1", "198.51.100.1", "203.0.113.7", 70, 700);
    r3.dst_country = pool->intern("NL");
    auto r4 =
        flow(4, "2001:db8:1::10", "2001:db8:2::1", "2001:db8:2::1", "2001:db8:1::10", 500, 9000);
    // The outside 198.51.100.9 to the forwarded port: the server 192.0.2.20 sends 8000.
    auto r5 = flow(5, "198.51.100.9", "203.0.113.7", "192.0.2.20", "198.51.100.9", 400, 8000);
    r5.src_country = pool->intern("DE");
    // The router asking a LAN host (DNS, say).
    auto r6 = flow(6, "192.0.2.254", "192.0.2.11", "192.0.2.11", "192.0.2.254", 60, 120);
    for (auto& r : {r1, r2, r3, r4, r5, r6}) s->rows.push_back(r);
    return s;
}

}  // namespace

TEST(LanClients, GroupsCountEachClientsOwnDirections) {
    auto snap = router_frame();
    std::vector<const table::FlowRow*> rows;
    for (const auto& r : snap->rows) rows.push_back(&r);
    const std::string path = write_file("names.leases", "1 aa 192.0.2.10 laptop-anna *\n");
    enrich::LeaseBook book({path});
    book.refresh();
    auto clients = ui::group_by_client(*snap, rows, router(), &book);
    std::remove(path.c_str());
    ASSERT_EQ(clients.size(), 4u);
    EXPECT_EQ(clients[0].address, "192.0.2.10");  // busiest first
    EXPECT_EQ(clients[0].name, "laptop-anna");
    EXPECT_EQ(clients[0].flows, 2u);
    EXPECT_EQ(clients[0].sent_bytes, 1200u);
    EXPECT_EQ(clients[0].received_bytes, 53000u);
    EXPECT_EQ(clients[0].sent_rate_avg[0], 600.0);
    EXPECT_EQ(clients[0].destinations, (std::vector<std::string>{"198.51.100.1", "198.51.100.2"}));
    EXPECT_EQ(clients[0].countries, (std::vector<std::string>{"NL", "JP"}));
    // The internal server of the port forward: it sent the reply direction.
    const auto server = std::find_if(clients.begin(), clients.end(),
                                     [](const auto& c) { return c.address == "192.0.2.20"; });
    ASSERT_NE(server, clients.end());
    EXPECT_EQ(server->sent_bytes, 8000u);
    EXPECT_EQ(server->received_bytes, 400u);
    EXPECT_EQ(server->destinations, std::vector<std::string>{"198.51.100.9"});
    EXPECT_EQ(server->countries, std::vector<std::string>{"DE"});
    const auto v6 = std::find_if(clients.begin(), clients.end(),
                                 [](const auto& c) { return c.address == "2001:db8:1::10"; });
    ASSERT_NE(v6, clients.end());
    EXPECT_EQ(v6->sent_bytes, 500u);
    EXPECT_EQ(v6->received_bytes, 9000u);

    // The filter of a client's row selects exactly its flows.
    ui::FilterError error;
    auto expr = ui::FilterExpr::parse("client:192.0.2.20", &error);
    ASSERT_TRUE(error.message.empty()) << error.message;
    const LocalAddresses local = router();
    std::vector<std::uint32_t> ids;
    for (const auto& r : snap->rows)
        if (expr.matches(*snap, r, &local)) ids.push_back(r.ct.id);
    EXPECT_EQ(ids, std::vector<std::uint32_t>{5});
    ui::FilterExpr::parse("client:laptop", &error);
    EXPECT_FALSE(error.message.empty()) << "client: takes an address or prefix";
}

TEST(LanClients, BatchJsonAndTheClientsTabAgree) {
    auto snap = router_frame();
    std::vector<const table::FlowRow*> rows;
    for (const auto& r : snap->rows) rows.push_back(&r);
    auto clients = ui::group_by_client(*snap, rows, router(), nullptr);
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* out = open_memstream(&buf, &len);
    ui::write_client_frame(ui::OutputFormat::json, out, *snap, clients, false, true);
    std::fclose(out);
    const std::string json(buf, len);
    std::free(buf);
    EXPECT_NE(json.find("{\"type\":\"client\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"client\":\"192.0.2.10\",\"family\":\"ipv4\",\"name\":null,"
                        "\"local\":false,\"flows\":2,\"sent_bytes\":1200,\"received_bytes\":53000"),
              std::string::npos)
        << json;
    EXPECT_NE(json.find("\"destinations\":[\"198.51.100.1\",\"198.51.100.2\"],"
                        "\"countries\":[\"NL\",\"JP\"]}"),
              std::string::npos)
        << json;

    ui::ViewModel m(router());
    m.offer(snap);
    m.settings().tab = ui::Tab::clients;
    m.refresh(20);
    ASSERT_EQ(m.groups().size(), clients.size());
    for (std::size_t i = 0; i < clients.size(); ++i) {
        EXPECT_EQ(m.groups()[i].key, ui::client_label(clients[i]));
        EXPECT_EQ(m.groups()[i].orig_bytes, clients[i].sent_bytes);
        EXPECT_EQ(m.groups()[i].reply_bytes, clients[i].received_bytes);
        EXPECT_EQ(m.groups()[i].flows, clients[i].flows);
    }
    EXPECT_EQ(m.groups()[0].filter, "client:192.0.2.10");
    EXPECT_EQ(m.groups()[0].countries, "NL JP");

    ui::FakeTerminal t(80, 24);
    ui::UiState ui;
    ui.summary.update(*snap);
    ui::render(t, m, ui);
    const std::string text = t.text();
    EXPECT_NE(text.find("[Clients]"), std::string::npos) << text;
    EXPECT_NE(text.find("CLIENT"), std::string::npos) << text;
    EXPECT_NE(text.find("192.0.2.10"), std::string::npos) << text;
    EXPECT_NE(text.find("NL JP"), std::string::npos) << text;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) EXPECT_LE(ui::display_width(line), 80u);
}

TEST(LanClients, HostsTabSaysWhichHostsAreLocalLanOrRemote) {
    ui::ViewModel m(router());
    m.offer(router_frame());
    m.settings().tab = ui::Tab::hosts;
    m.refresh(20);
    // Forwarded flows group by their destination; the router talking to a LAN host groups
    // by that host.
    bool remote = false;
    for (const auto& g : m.groups()) {
        if (g.key == "198.51.100.1") {
            EXPECT_EQ(g.scope, "remote");
            remote = true;
        }
    }
    EXPECT_TRUE(remote);
    bool lan = false;
    for (const auto& g : m.groups())
        if (g.key == "192.0.2.11") lan = g.scope == "LAN";
    EXPECT_TRUE(lan);
    ui::FakeTerminal t(100, 24);
    ui::UiState ui;
    ui.summary.update(*m.snapshot());
    ui::render(t, m, ui);
    EXPECT_NE(t.text().find("WHERE"), std::string::npos) << t.text();
    EXPECT_NE(t.text().find("remote"), std::string::npos) << t.text();
}

TEST(LanClients, CsvAndTableFramesCarryTheSameClients) {
    auto snap = router_frame();
    std::vector<const table::FlowRow*> rows;
    for (const auto& r : snap->rows) rows.push_back(&r);
    auto clients = ui::group_by_client(*snap, rows, router(), nullptr);
    auto text_of = [&](ui::OutputFormat format) {
        char* buf = nullptr;
        std::size_t len = 0;
        std::FILE* out = open_memstream(&buf, &len);
        ui::write_client_frame(format, out, *snap, clients, false, true);
        std::fclose(out);
        std::string text(buf, len);
        std::free(buf);
        return text;
    };
    const auto csv = text_of(ui::OutputFormat::csv);
    EXPECT_EQ(csv.rfind("ts,client,name,local,flows,sent_bytes,received_bytes,", 0), 0u) << csv;
    EXPECT_NE(csv.find(",192.0.2.10,,false,2,1200,53000,"), std::string::npos) << csv;
    EXPECT_NE(csv.find(",198.51.100.1 198.51.100.2,NL JP\n"), std::string::npos) << csv;
    const auto table = text_of(ui::OutputFormat::table);
    EXPECT_NE(table.find("clients 4"), std::string::npos) << table;
    EXPECT_NE(table.find("192.0.2.10"), std::string::npos) << table;
    EXPECT_NE(table.find(ui::human_bytes(53000)), std::string::npos) << table;  // received
}
