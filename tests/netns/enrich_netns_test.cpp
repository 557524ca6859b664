// GeoIP, services and reverse DNS as a user sees them: flowtop's JSON for real flows in a test
// namespace, with fixture databases and a real dnsmasq.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "harness.hpp"
#include "mmdb_writer.hpp"
#include "temp_dir.hpp"

using flowtop::test::capture;
using flowtop::test::must;
using flowtop::test::NetnsPair;
using flowtop::test::TempDir;
using nlohmann::json;

namespace {

struct Output {
    std::vector<json> frames;
    std::vector<json> flows;  // of the last frame
};

Output parse(const std::string& text) {
    Output out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        auto j = json::parse(line);
        if (j["type"] == "frame") {
            out.frames.push_back(j);
            out.flows.clear();
        } else if (j["type"] == "flow") {
            out.flows.push_back(j);
        }
    }
    return out;
}

const json* find_flow(const Output& out, const std::string& dst, const std::string& proto) {
    for (const auto& f : out.flows)
        if (f["dst"] == dst && f["proto"] == proto) return &f;
    return nullptr;
}

}  // namespace

TEST(EnrichNetns, JsonCarriesCountryCityAsnAndServiceOfRealFlows) {
    NetnsPair ns;
    TempDir dir;
    auto [city, asn] = flowtop::test::write_maxmind_fixtures(dir.path);
    // Real flows: ICMP both families, UDP to the DNS port (refused, still tracked).
    must(ns.in_client("ping -c2 -i0.2 -W1 198.51.100.2 >/dev/null || true"));
    must(ns.in_client("ping -c2 -i0.2 -W1 2001:db8:1::2 >/dev/null || true"));
    must("echo hi | " + ns.in_client("socat -u - UDP:198.51.100.2:53 2>/dev/null"));
    auto out = parse(
        capture(ns.in_client(std::string(FLOWTOP_BINARY) + " -o json -c 2 -t 0.2 -n --geoip-db " +
                             city + " --geoip-db " + asn)));
    ASSERT_EQ(out.frames.size(), 2u);
    const json* v4 = find_flow(out, "198.51.100.2", "icmp");
    ASSERT_NE(v4, nullptr);
    EXPECT_EQ((*v4)["dst_country"], "NL");
    EXPECT_EQ((*v4)["src_country"], "NL");
    EXPECT_EQ((*v4)["dst_city"], "Amsterdam");
    EXPECT_EQ((*v4)["dst_asn"], 64500);
    EXPECT_EQ((*v4)["dst_org"], "Example Transit");
    const json* v6 = find_flow(out, "2001:db8:1::2", "icmpv6");
    ASSERT_NE(v6, nullptr);
    EXPECT_EQ((*v6)["dst_country"], "JP");
    EXPECT_EQ((*v6)["dst_city"], "Tokyo");
    EXPECT_EQ((*v6)["dst_asn"], 64501);
    const json* udp = find_flow(out, "198.51.100.2", "udp");
    ASSERT_NE(udp, nullptr);
    EXPECT_EQ((*udp)["service"], "domain");
    EXPECT_TRUE((*udp)["dst_name"].is_null());  // -n
}

TEST(EnrichNetns, NoGeoipFlagLeavesCountriesEmpty) {
    NetnsPair ns;
    TempDir dir;
    auto [city, asn] = flowtop::test::write_maxmind_fixtures(dir.path);
    must(ns.in_client("ping -c2 -i0.2 -W1 198.51.100.2 >/dev/null || true"));
    auto out = parse(capture(
        ns.in_client(std::string(FLOWTOP_BINARY) + " -o json -c 1 -n -G --geoip-db " + city)));
    const json* v4 = find_flow(out, "198.51.100.2", "icmp");
    ASSERT_NE(v4, nullptr);
    EXPECT_TRUE((*v4)["dst_country"].is_null());
    EXPECT_TRUE((*v4)["dst_asn"].is_null());
}

TEST(EnrichNetns, CorruptDatabaseIsNamedAndFlowtopRunsOn) {
    NetnsPair ns;
    TempDir dir;
    auto [city, asn] = flowtop::test::write_maxmind_fixtures(dir.path);
    std::filesystem::resize_file(city, std::filesystem::file_size(city) - 40);
    must(ns.in_client("ping -c2 -i0.2 -W1 198.51.100.2 >/dev/null || true"));
    auto text = capture(ns.in_client(std::string(FLOWTOP_BINARY) + " -o json -c 1 -n --geoip-db " +
                                     city + " --geoip-db " + asn + " 2>&1"));
    EXPECT_NE(text.find(city), std::string::npos) << text;
    // The notice is on stderr (merged here); the frames still come, with the ASN db's answer.
    std::string json_only;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] == '{') json_only += line + "\n";
    auto out = parse(json_only);
    const json* v4 = find_flow(out, "198.51.100.2", "icmp");
    ASSERT_NE(v4, nullptr);
    EXPECT_EQ((*v4)["dst_asn"], 64500);
}

TEST(EnrichNetns, ReverseDnsNamesFromDnsmasqAppearInDstName) {
    NetnsPair ns;
    ns.set_resolver("198.51.100.2");
    must(ns.in_server(
        "dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces "
        "--listen-address=198.51.100.2 --except-interface=lo --pid-file= "
        "--ptr-record=2.100.51.198.in-addr.arpa,server.fte.test "
        "--ptr-record=1.100.51.198.in-addr.arpa,client.fte.test "
        "--ptr-record=2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa,"
        "server6.fte.test"));
    must(ns.in_client("ping -c2 -i0.2 -W1 198.51.100.2 >/dev/null || true"));
    must(ns.in_client("ping -c2 -i0.2 -W1 2001:db8:1::2 >/dev/null || true"));
    // Names arrive asynchronously: a few frames, the last must carry them.
    auto out =
        parse(capture(ns.in_client(std::string(FLOWTOP_BINARY) + " -o json -c 6 -t 0.3 -G")));
    ASSERT_EQ(out.frames.size(), 6u);
    const json* v4 = find_flow(out, "198.51.100.2", "icmp");
    ASSERT_NE(v4, nullptr);
    EXPECT_EQ((*v4)["dst_name"], "server.fte.test");
    EXPECT_EQ((*v4)["src_name"], "client.fte.test");
    const json* v6 = find_flow(out, "2001:db8:1::2", "icmpv6");
    ASSERT_NE(v6, nullptr);
    EXPECT_EQ((*v6)["dst_name"], "server6.fte.test");
}

TEST(EnrichNetns, SilentDnsServerDoesNotDelayFrames) {
    NetnsPair ns;
    ns.set_resolver("198.51.100.2");
    // The server swallows DNS queries: no answer, no ICMP refusal, every query times out.
    must(
        ns.in_server("nft 'add table inet fte; add chain inet fte in { type filter hook input "
                     "priority 0; }; add rule inet fte in udp dport 53 drop'"));
    // 1000 flows to distinct destinations, each a name query that never gets an answer. They
    // go through the server as gateway with a fixed neighbour entry: sending to 1000 on-link
    // addresses would wait on neighbour discovery for each.
    std::string mac = capture(ns.in_server("cat /sys/class/net/v1/address"));
    mac.erase(mac.find_last_not_of("\n") + 1);
    must("ip -n " + ns.client + " neigh replace 2001:db8:1::2 lladdr " + mac +
         " dev v0 nud permanent");
    must("ip -n " + ns.client + " route add 2001:db8:2::/64 via 2001:db8:1::2 dev v0");
    must(ns.in_client(
        "python3 -c \"import socket\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "for i in range(1000): s.sendto(b'x', ('2001:db8:2::%x' % (0x1000 + i), 9))\""));
    const double interval = 0.25;
    auto out =
        parse(capture(ns.in_client(std::string(FLOWTOP_BINARY) + " -o json -c 8 -t 0.25 -G")));
    ASSERT_EQ(out.frames.size(), 8u);
    EXPECT_GE(out.flows.size(), 1000u);
    for (std::size_t i = 1; i < out.frames.size(); ++i) {
        double dt = out.frames[i]["interval_s"].get<double>();
        EXPECT_NEAR(dt, interval, 0.1) << "frame " << i;
    }
    const json* f = find_flow(out, "2001:db8:2::1000", "udp");
    ASSERT_NE(f, nullptr);
    EXPECT_TRUE((*f)["dst_name"].is_null());
}

TEST(EnrichNetns, GroupCountryCountsFlowsPerDestinationCountry) {
    NetnsPair ns;
    TempDir dir;
    auto [city, asn] = flowtop::test::write_dbip_fixtures(dir.path);
    must(ns.in_client("ping -c2 -i0.2 -W1 198.51.100.2 >/dev/null || true"));
    must("echo hi | " + ns.in_client("socat -u - UDP:198.51.100.2:53 2>/dev/null"));
    must(ns.in_client("ping -c2 -i0.2 -W1 2001:db8:1::2 >/dev/null || true"));
    auto text = capture(ns.in_client(std::string(FLOWTOP_BINARY) +
                                     " -o json -c 1 -n --group country --geoip-db " + city));
    std::map<std::string, json> rows;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        auto j = json::parse(line);
        ASSERT_EQ(j["type"], "country") << line;
        rows[j["country"].get<std::string>()] = j;
    }
    ASSERT_EQ(rows.count("NL"), 1u) << text;
    ASSERT_EQ(rows.count("JP"), 1u) << text;
    EXPECT_EQ(rows["NL"]["flows"], 2);
    EXPECT_EQ(rows["JP"]["flows"], 1);
    auto csv = capture(ns.in_client(std::string(FLOWTOP_BINARY) +
                                    " -o csv -c 1 -n --group country --geoip-db " + city));
    EXPECT_EQ(csv.rfind("ts,country,flows,orig_bytes,reply_bytes,orig_rate,reply_rate\n", 0), 0u);
    EXPECT_NE(csv.find(",NL,2,"), std::string::npos) << csv;
}
