#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "flowtop/enrich/geoip.hpp"
#include "flowtop/util/error.hpp"
#include "mmdb_writer.hpp"
#include "temp_dir.hpp"

using namespace flowtop;
using namespace flowtop::enrich;

namespace {

using flowtop::test::TempDir;

GeoResult look(const GeoIp& geo, const char* text) {
    auto parsed = parse_addr(text);
    EXPECT_TRUE(parsed) << text;
    return geo.lookup(parsed->first, parsed->second);
}

GeoIp open_all(const std::vector<std::string>& files, std::vector<std::string>& notes) {
    return GeoIp::open(files, notes);
}

}  // namespace

TEST(GeoIp, ReadsMaxMindSchemaForIpv4AndIpv6) {
    TempDir dir;
    auto [city, asn] = test::write_maxmind_fixtures(dir.path);
    std::vector<std::string> notes;
    auto geo = open_all({city, asn}, notes);
    EXPECT_TRUE(notes.empty()) << notes.front();
    auto r = look(geo, "198.51.100.7");
    EXPECT_EQ(r.country, "NL");
    EXPECT_EQ(r.country_name, "Netherlands");  // English, of the names the record has
    EXPECT_EQ(r.city, "Amsterdam");
    EXPECT_EQ(r.asn, 64500u);
    EXPECT_EQ(r.org, "Example Transit");
    auto r6 = look(geo, "2001:db8:1::5");
    EXPECT_EQ(r6.country, "JP");
    EXPECT_EQ(r6.country_name, "Japan");
    EXPECT_EQ(r6.city, "Tokyo");
    EXPECT_EQ(r6.asn, 64501u);
    EXPECT_EQ(r6.org, "Example IX");
}

TEST(GeoIp, ReadsFlatDbIpSchema) {
    TempDir dir;
    auto [city, asn] = test::write_dbip_fixtures(dir.path);
    std::vector<std::string> notes;
    auto geo = open_all({city, asn}, notes);
    ASSERT_EQ(geo.databases().size(), 2u);
    auto r = look(geo, "198.51.100.200");
    EXPECT_EQ(r.country, "NL");
    EXPECT_EQ(r.country_name, "") << "this schema has no names: the code stands alone";
    EXPECT_EQ(r.city, "Amsterdam");
    EXPECT_EQ(r.asn, 64500u);
    auto r6 = look(geo, "2001:db8:1:ffff::1");
    EXPECT_EQ(r6.country, "JP");
    EXPECT_EQ(r6.city, "Tokyo");
}

TEST(GeoIp, DocumentationAddressMissingFromDatabasesGetsItsLabel) {
    TempDir dir;
    auto [city, asn] = test::write_maxmind_fixtures(dir.path);
    std::vector<std::string> notes;
    auto geo = open_all({city, asn}, notes);
    auto r = look(geo, "203.0.113.9");
    EXPECT_EQ(r.country, k_special_country);
    EXPECT_EQ(r.org, "documentation");
    EXPECT_EQ(look(geo, "2001:db8:2::1").org, "documentation");
}

TEST(GeoIp, LabelsSpecialAddressesWithoutADatabase) {
    GeoIp none;
    EXPECT_EQ(look(none, "10.1.2.3").org, "private network");
    EXPECT_EQ(look(none, "172.20.0.1").org, "private network");
    EXPECT_EQ(look(none, "192.168.1.1").org, "private network");
    EXPECT_EQ(look(none, "127.0.0.1").org, "loopback");
    EXPECT_EQ(look(none, "::1").org, "loopback");
    EXPECT_EQ(look(none, "169.254.1.1").org, "link-local");
    EXPECT_EQ(look(none, "fe80::1").org, "link-local");
    EXPECT_EQ(look(none, "fd00::1").org, "private network");
    EXPECT_EQ(look(none, "192.0.2.1").country, "--");
    auto pub = look(none, "8.8.8.8");
    EXPECT_TRUE(pub.empty());
    EXPECT_TRUE(look(none, "172.32.0.1").empty());  // just outside 172.16/12
}

TEST(GeoIp, TruncatedFileIsAClearErrorNamingIt) {
    TempDir dir;
    auto [city, asn] = test::write_maxmind_fixtures(dir.path);
    std::filesystem::resize_file(city, std::filesystem::file_size(city) / 2);
    try {
        GeoDb db(city);
        FAIL() << "a truncated database opened";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(city), std::string::npos) << e.what();
    }
    // flowtop runs on with the databases that are fine.
    std::vector<std::string> notes;
    auto geo = open_all({city, asn}, notes);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find(city), std::string::npos);
    EXPECT_EQ(look(geo, "198.51.100.7").asn, 64500u);
}

TEST(GeoIp, GarbageAndMissingFilesAreNotedNotFatal) {
    TempDir dir;
    auto garbage = dir.path + "/garbage.mmdb";
    std::ofstream(garbage) << std::string(4096, 'x');
    std::vector<std::string> notes;
    auto geo = open_all({garbage, dir.path + "/missing.mmdb"}, notes);
    EXPECT_TRUE(geo.empty());
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_NE(notes[0].find("garbage.mmdb"), std::string::npos);
    EXPECT_NE(notes[1].find("missing.mmdb"), std::string::npos);
}

// The databases scripts/install-geoip puts into data/geoip: lookups only, no traffic.
TEST(GeoIp, DefaultDatabaseKnowsWellKnownAddresses) {
    const std::string dir = std::string(FLOWTOP_SOURCE_DIR) + "/data/geoip";
    std::vector<std::string> files;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".mmdb") files.push_back(it->path().string());
    if (files.empty()) GTEST_SKIP() << "no databases in " << dir << " (scripts/install-geoip)";
    std::sort(files.begin(), files.end());
    std::vector<std::string> notes;
    auto geo = open_all(files, notes);
    EXPECT_TRUE(notes.empty()) << notes.front();
    EXPECT_EQ(look(geo, "8.8.8.8").country, "US");          // Google Public DNS
    EXPECT_EQ(look(geo, "2001:67c:2e8::2").country, "NL");  // RIPE NCC
    EXPECT_EQ(look(geo, "2001:200::1").country, "JP");      // WIDE project
    EXPECT_EQ(look(geo, "193.0.6.139").country, "NL");      // RIPE NCC, Amsterdam
    EXPECT_EQ(look(geo, "133.11.0.1").country, "JP");       // University of Tokyo
    EXPECT_FALSE(look(geo, "193.0.6.139").city.empty());
}

// The ASN database flowtop-geoip-update converts from ip-location-db's CSV (scripts/install-geoip
// puts it into data/geoip as asn.mmdb): AS numbers and organisations of well-known networks.
TEST(GeoIp, DefaultAsnDatabaseNamesWellKnownNetworks) {
    const std::string file = std::string(FLOWTOP_SOURCE_DIR) + "/data/geoip/asn.mmdb";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        GTEST_SKIP() << "no " << file << " (scripts/install-geoip could not install it)";
    std::vector<std::string> notes;
    auto geo = open_all({file}, notes);
    EXPECT_TRUE(notes.empty()) << notes.front();
    EXPECT_EQ(look(geo, "8.8.8.8").asn, 15169u);  // Google Public DNS
    EXPECT_NE(look(geo, "8.8.8.8").org.find("Google"), std::string::npos)
        << look(geo, "8.8.8.8").org;
    EXPECT_EQ(look(geo, "1.1.1.1").asn, 13335u);     // Cloudflare
    EXPECT_EQ(look(geo, "193.0.6.139").asn, 3333u);  // RIPE NCC
    EXPECT_EQ(look(geo, "2001:67c:2e8::2").asn, 3333u);
    EXPECT_NE(look(geo, "2001:67c:2e8::2").org.find("RIPE"), std::string::npos)
        << look(geo, "2001:67c:2e8::2").org;
    EXPECT_EQ(look(geo, "2001:4860:4860::8888").asn, 15169u);  // Google, IPv6
}

// flowtop-asn-mmdb on ranges that are not CIDR blocks, quoted organisations, IPv6, "not
// routed" (AS 0) lines, and a broken line named by file:line.
TEST(AsnMmdb, ConvertsCsvRangesIntoLookups) {
    TempDir dir;
    const auto csv = dir.path + "/asn.csv";
    std::ofstream(csv) << "198.51.100.0,198.51.100.127,64500,\"Example, \"\"Transit\"\"\"\n"
                          "198.51.100.130,198.51.100.200,64501,Odd Range\n"
                          "203.0.113.0,203.0.113.255,0,Not routed\n"
                          "2001:db8::,2001:db8:0:ffff:ffff:ffff:ffff:ffff,64502,Example Six\n";
    const auto out = dir.path + "/asn.mmdb";
    ASSERT_EQ(std::system((std::string(FLOWTOP_ASN_MMDB) + " " + out + " " + csv).c_str()), 0);
    std::vector<std::string> notes;
    auto geo = open_all({out}, notes);
    EXPECT_TRUE(notes.empty()) << notes.front();
    EXPECT_EQ(look(geo, "198.51.100.0").asn, 64500u);
    EXPECT_EQ(look(geo, "198.51.100.127").org, "Example, \"Transit\"");
    EXPECT_EQ(look(geo, "198.51.100.128").asn, 0u);
    for (auto* a : {"198.51.100.130", "198.51.100.131", "198.51.100.199", "198.51.100.200"})
        EXPECT_EQ(look(geo, a).asn, 64501u) << a;
    EXPECT_EQ(look(geo, "198.51.100.201").asn, 0u);
    EXPECT_EQ(look(geo, "203.0.113.9").asn, 0u);
    EXPECT_EQ(look(geo, "2001:db8::1").asn, 64502u);
    EXPECT_EQ(look(geo, "2001:db8:0:ffff::1").org, "Example Six");
    EXPECT_EQ(look(geo, "2001:db8:1::1").asn, 0u);

    std::ofstream(csv) << "198.51.100.0,198.51.100.127,64500,A\n198.51.100.300,x,1,B\n";
    const auto cmd = std::string(FLOWTOP_ASN_MMDB) + " " + dir.path + "/bad.mmdb " + csv + " 2>" +
                     dir.path + "/err";
    EXPECT_NE(std::system(cmd.c_str()), 0);
    std::ifstream err(dir.path + "/err");
    std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(csv + ":2: bad address range"), std::string::npos) << text;
    EXPECT_FALSE(std::filesystem::exists(dir.path + "/bad.mmdb"));
}
