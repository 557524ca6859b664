#include "flowtop/ui/options.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "flowtop/enrich/dhcp_leases.hpp"
#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/config_file.hpp"
#include "flowtop/util/error.hpp"

using flowtop::UsageError;
using flowtop::ui::Options;
using flowtop::ui::OutputFormat;
using flowtop::ui::parse_options;

namespace {
Options parse(std::vector<std::string> args) {
    args.insert(args.begin(), "flowtop");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_options(static_cast<int>(args.size()), argv.data());
}
}  // namespace

TEST(Options, DefaultsShowEverythingEverySecond) {
    auto o = parse({});
    EXPECT_FALSE(o.only_ipv4);
    EXPECT_FALSE(o.only_ipv6);
    EXPECT_TRUE(o.protocols.empty());
    EXPECT_EQ(o.interval.count(), 1000);
    EXPECT_FALSE(o.batch);
    EXPECT_FALSE(o.count.has_value());
}

TEST(Options, FlowtopFlagsCombine) {
    auto o = parse({"-4", "-T", "-U", "-n", "-G", "-s", "-b", "-t", "2.5"});
    EXPECT_TRUE(o.only_ipv4);
    EXPECT_EQ(o.protocols, (std::vector<std::uint8_t>{IPPROTO_TCP, IPPROTO_UDP}));
    EXPECT_TRUE(o.no_dns);
    EXPECT_TRUE(o.no_geoip);
    EXPECT_TRUE(o.show_source);
    EXPECT_TRUE(o.bits);
    EXPECT_EQ(o.interval.count(), 2500);
}

TEST(Options, IcmpFlagCoversBothIcmpVersions) {
    auto o = parse({"-I"});
    EXPECT_EQ(o.protocols, (std::vector<std::uint8_t>{IPPROTO_ICMP, IPPROTO_ICMPV6}));
}

TEST(Options, BothFamiliesMeanAll) {
    auto o = parse({"-4", "-6"});
    EXPECT_FALSE(o.only_ipv4);
    EXPECT_FALSE(o.only_ipv6);
}

TEST(Options, OutputFormatImpliesBatch) {
    auto o = parse({"-o", "json", "-c", "3"});
    EXPECT_TRUE(o.batch);
    EXPECT_EQ(o.format, OutputFormat::json);
    EXPECT_EQ(o.count.value(), 3);
    EXPECT_EQ(parse({"--output=csv"}).format, OutputFormat::csv);
    EXPECT_TRUE(parse({"--batch"}).batch);
}

TEST(Options, LongFormsMatchShortOnes) {
    auto o = parse({"--ipv6", "--tcp", "--no-dns", "--interval", "3", "--netns", "x", "--geoip-db",
                    "a.mmdb", "--geoip-db", "b.mmdb", "--filter", "port:22", "--sort", "bytes"});
    EXPECT_TRUE(o.only_ipv6);
    EXPECT_TRUE(o.no_dns);
    EXPECT_EQ(o.interval.count(), 3000);
    EXPECT_EQ(o.netns, "x");
    EXPECT_EQ(o.geoip_dbs, (std::vector<std::string>{"a.mmdb", "b.mmdb"}));
    EXPECT_EQ(o.filter, "port:22");
    EXPECT_EQ(o.sort, "bytes");
}

TEST(Options, AllNetnsExcludesOneNamespace) {
    EXPECT_TRUE(parse({"--all-netns"}).all_netns);
    EXPECT_FALSE(parse({}).all_netns);
    try {
        parse({"--all-netns", "--netns", "x"});
        ADD_FAILURE() << "no usage error";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("exclude each other"), std::string::npos);
    }
}

TEST(Options, UnknownFlagIsAUsageError) {
    EXPECT_THROW(parse({"-X"}), UsageError);
    EXPECT_THROW(parse({"--bogus"}), UsageError);
    EXPECT_THROW(parse({"stray"}), UsageError);
}

TEST(Options, BadValuesAreUsageErrors) {
    EXPECT_THROW(parse({"-t", "zero"}), UsageError);
    EXPECT_THROW(parse({"-t", "0"}), UsageError);
    EXPECT_THROW(parse({"-t"}), UsageError);
    EXPECT_THROW(parse({"-c", "0"}), UsageError);
    EXPECT_THROW(parse({"-o", "xml"}), UsageError);
}

TEST(Options, ErrorMessageNamesTheFlag) {
    try {
        parse({"-X"});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_EQ(std::string(e.what()), "unknown option -X");
    }
    try {
        parse({"--bogus"});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_EQ(std::string(e.what()), "unknown option --bogus");
    }
}

TEST(Options, HelpAndVersion) {
    EXPECT_TRUE(parse({"-h"}).show_help);
    EXPECT_TRUE(parse({"--version"}).show_version);
    EXPECT_NE(flowtop::ui::usage_text().find("--batch"), std::string::npos);
}

TEST(Options, FilterAndSortAreCheckedUpFront) {
    EXPECT_THROW(parse({"--filter", "port:22 and"}), UsageError);
    EXPECT_THROW(parse({"--sort", "colour"}), UsageError);
    EXPECT_NO_THROW(
        parse({"--filter", "host:198.51.100.0/24 and not port:22", "--sort", "orig_bytes"}));
    try {
        parse({"--filter", "(port:22"});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("at column 1"), std::string::npos) << e.what();
    }
}

TEST(Options, FilterAndSortAreParsedOnceIntoTypedValues) {
    auto o = parse({"--filter", "port:22 and not proto:udp", "--sort", "bytes"});
    ASSERT_TRUE(o.sort_key.has_value());
    EXPECT_EQ(*o.sort_key, flowtop::ui::SortKey::bytes);
    EXPECT_FALSE(o.filter_expr.empty());
    EXPECT_EQ(o.filter_expr.text(), "port:22 and not proto:udp");
    auto plain = parse({});
    EXPECT_FALSE(plain.sort_key.has_value());
    EXPECT_TRUE(plain.filter_expr.empty());
    // Values filled in elsewhere (a config file) go through the same parsing.
    plain.sort = "age";
    plain.filter = "port:";
    EXPECT_THROW(flowtop::ui::resolve_options(plain), UsageError);
    plain.filter = "port:53";
    flowtop::ui::resolve_options(plain);
    EXPECT_EQ(plain.sort_key, flowtop::ui::SortKey::age);
    EXPECT_EQ(plain.filter_expr.text(), "port:53");
}

TEST(Options, LanAndLeasesRepeatAndABadNetworkIsAUsageError) {
    auto o = parse({"--lan", "192.0.2.0/24", "--lan", "2001:db8:1::/64", "--leases", "/tmp/a",
                    "--leases", "none", "--group", "client"});
    EXPECT_EQ(o.lans, (std::vector<std::string>{"192.0.2.0/24", "2001:db8:1::/64"}));
    EXPECT_EQ(o.lease_files, (std::vector<std::string>{"/tmp/a", "none"}));
    EXPECT_EQ(o.group, flowtop::ui::Grouping::client);
    EXPECT_EQ(flowtop::ui::lease_paths(o), std::vector<std::string>{"/tmp/a"});  // none: none
    EXPECT_EQ(flowtop::ui::lan_networks(o).size(), 2u);
    EXPECT_EQ(flowtop::ui::lease_paths(parse({})), flowtop::enrich::default_lease_paths());
    EXPECT_THROW(parse({"--lan", "192.0.2.0/33"}), UsageError);
    EXPECT_THROW(parse({"--lan", "office"}), UsageError);
    EXPECT_THROW(parse({"--leases", ""}), UsageError);
}

TEST(Options, LanAndLeasesKeysOfTheConfigFileLoadBackWhatIsSaved) {
    Options o;
    std::vector<std::string> warnings;
    flowtop::ui::apply_config_text("lan = 192.0.2.0/24, 198.51.100.0/25\nleases = /tmp/x.leases\n",
                                   "rc", o, warnings);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(o.lans.size(), 2u);
    EXPECT_TRUE(o.leases_given);
    Options back;
    flowtop::ui::apply_config_text(flowtop::ui::config_text(o), "saved", back, warnings);
    EXPECT_EQ(back.lans, o.lans);
    EXPECT_EQ(back.lease_files, o.lease_files);
    // A saved file of defaults (empty values) keeps the defaults: the usual lease places.
    Options defaults;
    flowtop::ui::apply_config_text(flowtop::ui::config_text(Options{}), "saved", defaults,
                                   warnings);
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_FALSE(defaults.leases_given);
    flowtop::ui::apply_config_text("lan = not-a-network\n", "rc", o, warnings);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("rc:1"), std::string::npos) << warnings[0];
}
