#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "flowtop/enrich/geoip.hpp"
#include "flowtop/util/error.hpp"
#include "mmdb_writer.hpp"

using namespace flowtop;
using namespace flowtop::enrich;

namespace {

class TempDir {
  public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "flowtop-geo-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

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
    auto [city, asn] = test::write_maxmind_fixtures(dir.path());
    std::vector<std::string> notes;
    auto geo = open_all({city, asn}, notes);
    EXPECT_TRUE(notes.empty()) << notes.front();
    auto r = look(geo, "198.51.100.7");
    EXPECT_EQ(r.country, "NL");
    EXPECT_EQ(r.city, "Amsterdam");
    EXPECT_EQ(r.asn, 64500u);
    EXPECT_EQ(r.org, "Example Transit");
    auto r6 = look(geo, "2001:db8:1::5");
    EXPECT_EQ(r6.country, "JP");
    EXPECT_EQ(r6.city, "Tokyo");
    EXPECT_EQ(r6.asn, 64501u);
    EXPECT_EQ(r6.org, "Example IX");
}

TEST(GeoIp, ReadsFlatDbIpSchema) {
    TempDir dir;
    auto [city, asn] = test::write_dbip_fixtures(dir.path());
    std::vector<std::string> notes;
    auto geo = open_all({city, asn}, notes);
    ASSERT_EQ(geo.databases().size(), 2u);
    auto r = look(geo, "198.51.100.200");
    EXPECT_EQ(r.country, "NL");
    EXPECT_EQ(r.city, "Amsterdam");
    EXPECT_EQ(r.asn, 64500u);
    auto r6 = look(geo, "2001:db8:1:ffff::1");
    EXPECT_EQ(r6.country, "JP");
    EXPECT_EQ(r6.city, "Tokyo");
}

TEST(GeoIp, DocumentationAddressMissingFromDatabasesGetsItsLabel) {
    TempDir dir;
    auto [city, asn] = test::write_maxmind_fixtures(dir.path());
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
    auto [city, asn] = test::write_maxmind_fixtures(dir.path());
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
    auto garbage = dir.path() + "/garbage.mmdb";
    std::ofstream(garbage) << std::string(4096, 'x');
    std::vector<std::string> notes;
    auto geo = open_all({garbage, dir.path() + "/missing.mmdb"}, notes);
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
