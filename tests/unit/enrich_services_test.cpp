#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>

#include "flowtop/enrich/services.hpp"
#include "flowtop/util/error.hpp"

using namespace flowtop::enrich;

TEST(Services, ParsesPortsNamesCommentsAndBlankLines) {
    ServiceTable t;
    std::vector<std::string> warnings;
    t.load_text("# a comment\n\n22, ssh\n  80 ,http   # web\r\n443,https", "tcp.conf", IPPROTO_TCP,
                warnings);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(t.size(), 3u);
    ASSERT_NE(t.lookup(IPPROTO_TCP, 22), nullptr);
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 22), "ssh");
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 80), "http");
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 443), "https");
    EXPECT_EQ(t.lookup(IPPROTO_UDP, 22), nullptr);  // per protocol
    EXPECT_EQ(t.lookup(IPPROTO_TCP, 23), nullptr);
}

TEST(Services, MalformedLinesWarnWithFileAndLineAndTheRestLoads) {
    ServiceTable t;
    std::vector<std::string> warnings;
    t.load_text("22, ssh\nnonsense\n70000, big\nx1, bad\n25,\n53, two words\n110, pop3\n",
                "/etc/flowtop/tcp.conf", IPPROTO_TCP, warnings);
    ASSERT_EQ(warnings.size(), 5u);
    EXPECT_EQ(warnings[0].rfind("/etc/flowtop/tcp.conf:2: ", 0), 0u) << warnings[0];
    EXPECT_EQ(warnings[1].rfind("/etc/flowtop/tcp.conf:3: bad port \"70000\"", 0), 0u)
        << warnings[1];
    EXPECT_EQ(warnings[2].rfind("/etc/flowtop/tcp.conf:4: ", 0), 0u);
    EXPECT_EQ(warnings[3].rfind("/etc/flowtop/tcp.conf:5: ", 0), 0u);
    EXPECT_EQ(warnings[4].rfind("/etc/flowtop/tcp.conf:6: ", 0), 0u);
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 110), "pop3");
}

TEST(Services, DuplicatePortKeepsTheFirstNameAndWarns) {
    ServiceTable t;
    std::vector<std::string> warnings;
    t.load_text("80, http\n80, www\n80, http\n", "u.conf", IPPROTO_TCP, warnings);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0].rfind("u.conf:2: port 80 already named \"http\"", 0), 0u) << warnings[0];
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 80), "http");
}

TEST(Services, UnreadableFileIsAnError) {
    ServiceTable t;
    std::vector<std::string> warnings;
    EXPECT_THROW(t.load_file("/nonexistent/tcp.conf", IPPROTO_TCP, warnings), flowtop::Error);
}

TEST(Services, ShippedConfFilesLoadCleanly) {
    std::vector<std::string> warnings;
    auto t = load_services(std::string(FLOWTOP_SOURCE_DIR) + "/conf", warnings);
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 22), "ssh");
    EXPECT_EQ(*t.lookup(IPPROTO_TCP, 443), "https");
    EXPECT_EQ(*t.lookup(IPPROTO_UDP, 53), "domain");
    EXPECT_EQ(*t.lookup(IPPROTO_UDP, 123), "ntp");
}

TEST(Services, SearchPathPutsConfDirFirst) {
    auto dirs = conf_search_path("/my/conf");
    ASSERT_GE(dirs.size(), 4u);
    EXPECT_EQ(dirs[0], "/my/conf");
    EXPECT_EQ(dirs[1], "/etc/flowtop");
    // The checkout is searched only by development builds (FLOWTOP_DEV_PATHS).
    const bool has_source = std::find(dirs.begin(), dirs.end(),
                                      std::string(FLOWTOP_SOURCE_DIR) + "/conf") != dirs.end();
#ifdef FLOWTOP_DEV_PATHS
    EXPECT_TRUE(has_source);
#else
    EXPECT_FALSE(has_source);
#endif
}

#include "flowtop/ui/options.hpp"

TEST(EnrichOptions, ConfDirAndGroupCountryParse) {
    const char* argv[] = {"flowtop", "--conf-dir", "/x",     "--group",    "country", "-n",
                          "-G",      "--geoip-db", "a.mmdb", "--geoip-db", "b.mmdb",  nullptr};
    auto o = flowtop::ui::parse_options(11, const_cast<char* const*>(argv));
    EXPECT_EQ(o.conf_dir, "/x");
    EXPECT_EQ(o.group, flowtop::ui::Grouping::country);
    EXPECT_TRUE(o.no_dns);
    EXPECT_TRUE(o.no_geoip);
    EXPECT_EQ(o.geoip_dbs, (std::vector<std::string>{"a.mmdb", "b.mmdb"}));
    const char* bad[] = {"flowtop", "--group", "planet", nullptr};
    EXPECT_THROW(flowtop::ui::parse_options(3, const_cast<char* const*>(bad)), flowtop::UsageError);
}
