// mmdb files replaced while flowtop runs: truncated or rewritten in place (cp), or replaced by
// rename (geoipupdate, mv). Never SIGBUS, never answers silently gone.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "flowtop/enrich/geoip.hpp"
#include "mmdb_writer.hpp"
#include "temp_dir.hpp"

using namespace flowtop;
using namespace flowtop::enrich;
namespace fs = std::filesystem;

namespace {

using Dir = flowtop::test::TempDir;

std::string write_country_db(const std::string& path, const char* country) {
    test::MmdbWriter w("GeoLite2-Country");
    w.insert(
        "198.51.100.0/24",
        test::MmdbValue::map(
            {{"country", test::MmdbValue::map({{"iso_code", test::MmdbValue::str(country)}})}}));
    return w.write(path);
}

std::string country_of(const GeoIp& geo) {
    auto a = parse_addr("198.51.100.7");
    return geo.lookup(a->first, a->second).country;
}

}  // namespace

TEST(GeoIpReplaced, TruncatedInPlaceIsSurvivedToldOnceAndReopenedWhenValid) {
    Dir dir;
    const auto path = write_country_db(dir.path + "/c.mmdb", "NL");
    std::vector<std::string> notes;
    auto geo = GeoIp::open({path}, notes);
    ASSERT_TRUE(notes.empty());
    ASSERT_EQ(country_of(geo), "NL");

    fs::resize_file(path, 0);  // what `cp new.mmdb c.mmdb` does first
    // The read hit the cut: SIGBUS survived, the answer dropped (what is left is the label of
    // a documentation address that no database places).
    EXPECT_EQ(country_of(geo), "--");
    EXPECT_TRUE(geo.check_files(notes));
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find(path), std::string::npos) << notes[0];
    EXPECT_NE(notes[0].find("lookups from it stop until it is valid again"), std::string::npos)
        << notes[0];
    EXPECT_FALSE(geo.databases()[0].usable());
    EXPECT_FALSE(geo.check_files(notes));  // said once
    EXPECT_EQ(notes.size(), 1u);

    write_country_db(path, "SE");  // the copy finishes, in place
    EXPECT_TRUE(geo.check_files(notes));
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_EQ(notes[1], "GeoIP database " + path + " changed on disk: reopened");
    EXPECT_EQ(country_of(geo), "SE");
}

TEST(GeoIpReplaced, ShrunkInPlaceWithoutAReadInBetweenIsNotSilent) {
    Dir dir;
    const auto path = write_country_db(dir.path + "/c.mmdb", "NL");
    std::vector<std::string> notes;
    auto geo = GeoIp::open({path}, notes);
    const auto size = fs::file_size(path);
    fs::resize_file(path, size / 2);  // half-written, nobody looked yet
    EXPECT_TRUE(geo.check_files(notes));
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("it changed while flowtop ran"), std::string::npos) << notes[0];
    EXPECT_EQ(country_of(geo), "--");  // no lookups from a file that is not the one checked
}

TEST(GeoIpReplaced, ReplacedByRenameIsPickedUp) {
    Dir dir;
    const auto path = write_country_db(dir.path + "/c.mmdb", "NL");
    std::vector<std::string> notes;
    auto geo = GeoIp::open({path}, notes);
    ASSERT_EQ(country_of(geo), "NL");
    EXPECT_FALSE(geo.check_files(notes));  // unchanged: nothing to say

    const auto next = write_country_db(dir.path + "/c.mmdb.new", "JP");
    ASSERT_EQ(std::rename(next.c_str(), path.c_str()), 0);
    EXPECT_EQ(country_of(geo), "NL");  // the old inode is still mapped, intact
    EXPECT_TRUE(geo.check_files(notes));
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_EQ(notes[0], "GeoIP database " + path + " changed on disk: reopened");
    EXPECT_EQ(country_of(geo), "JP");

    // A broken replacement keeps the intact old file in use, and says so.
    const std::string junk = dir.path + "/junk";
    {
        std::FILE* f = std::fopen(junk.c_str(), "w");
        std::fputs("not an mmdb", f);
        std::fclose(f);
    }
    ASSERT_EQ(std::rename(junk.c_str(), path.c_str()), 0);
    EXPECT_TRUE(geo.check_files(notes));
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_NE(notes[1].find("lookups go on with the file opened before"), std::string::npos)
        << notes[1];
    EXPECT_EQ(country_of(geo), "JP");
}
