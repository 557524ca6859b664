#include "flowtop/ui/config_file.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "flowtop/util/error.hpp"
#include "temp_dir.hpp"

using namespace flowtop::ui;

namespace {

using flowtop::test::TempDir;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

Options load(std::vector<std::string> args, const std::vector<std::string>& files,
             std::vector<std::string>& warnings) {
    args.insert(args.begin(), "flowtop");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return load_options(static_cast<int>(args.size()), argv.data(), files, warnings);
}

// Sets an environment variable for one test and puts back what was there.
struct EnvVar {
    std::string name;
    std::optional<std::string> old;
    EnvVar(const char* n, const char* value) : name(n) {
        if (const char* v = getenv(n)) old = v;
        if (value)
            setenv(n, value, 1);
        else
            unsetenv(n);
    }
    ~EnvVar() {
        if (old)
            setenv(name.c_str(), old->c_str(), 1);
        else
            unsetenv(name.c_str());
    }
};

}  // namespace

TEST(ConfigFile, EveryKeyLoads) {
    Options o;
    std::vector<std::string> warnings;
    apply_config_text(
        "# comment\n\ninterval = 2.5\nshow_source = yes\nsort = bytes\nreverse = on\n"
        "rate_window = 10s\nunits = bits\ntotals = true\nbars = 1\nlog_bars = yes\n"
        "active_only = yes\nfilter = port:22 or host:198.51.100.0/24\nfamily = ipv6\n"
        "protocols = tcp, udp\nhide_protocols = icmp\ndns = no\nservice_names = off\n"
        "processes = no\ngeoip = no\ngeoip_db = /a.mmdb, /b.mmdb\nconf_dir = /etc/x\n"
        "color = no\nhide_columns = state, age\n",
        "rc", o, warnings);
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_EQ(o.interval.count(), 2500);
    EXPECT_TRUE(o.show_source);
    EXPECT_EQ(o.sort, "bytes");
    EXPECT_TRUE(o.reverse);
    EXPECT_EQ(o.rate_window, "10s");
    EXPECT_TRUE(o.bits);
    EXPECT_TRUE(o.totals);
    EXPECT_TRUE(o.bars);
    EXPECT_TRUE(o.log_bars);
    EXPECT_TRUE(o.active_only);
    EXPECT_EQ(o.filter, "port:22 or host:198.51.100.0/24");
    EXPECT_TRUE(o.only_ipv6);
    EXPECT_FALSE(o.only_ipv4);
    EXPECT_EQ(o.protocols, (std::vector<std::uint8_t>{IPPROTO_TCP, IPPROTO_UDP}));
    EXPECT_EQ(o.hidden_protocols, (std::vector<std::uint8_t>{IPPROTO_ICMP, IPPROTO_ICMPV6}));
    EXPECT_TRUE(o.no_dns);
    EXPECT_TRUE(o.port_numbers);
    EXPECT_TRUE(o.no_proc);
    EXPECT_TRUE(o.no_geoip);
    EXPECT_EQ(o.geoip_dbs, (std::vector<std::string>{"/a.mmdb", "/b.mmdb"}));
    EXPECT_EQ(o.conf_dir, "/etc/x");
    EXPECT_FALSE(o.color);
    EXPECT_EQ(o.hidden_columns, (std::vector<std::string>{"state", "age"}));
}

TEST(ConfigFile, BadLinesWarnWithFileAndLineAndTheRestLoads) {
    Options o;
    std::vector<std::string> warnings;
    apply_config_text(
        "interval = 3\nthis is not a setting\ncolour = no\nsort = planet\ninterval = 0\n"
        "filter = port:\nshow_source = maybe\nbars = yes\nhide_columns = destination\n",
        "/etc/flowtop/flowtoprc", o, warnings);
    ASSERT_EQ(warnings.size(), 7u);
    EXPECT_EQ(warnings[0].rfind("/etc/flowtop/flowtoprc:2: expected \"key = value\"", 0), 0u)
        << warnings[0];
    EXPECT_EQ(warnings[1].rfind("/etc/flowtop/flowtoprc:3: unknown key \"colour\"", 0), 0u)
        << warnings[1];
    EXPECT_EQ(warnings[2].rfind("/etc/flowtop/flowtoprc:4: sort: unknown sort column", 0), 0u)
        << warnings[2];
    EXPECT_EQ(warnings[3].rfind("/etc/flowtop/flowtoprc:5: interval: invalid interval", 0), 0u)
        << warnings[3];
    EXPECT_EQ(warnings[4].rfind("/etc/flowtop/flowtoprc:6: filter: ", 0), 0u) << warnings[4];
    EXPECT_EQ(warnings[5].rfind("/etc/flowtop/flowtoprc:7: show_source: expected yes or no", 0), 0u)
        << warnings[5];
    EXPECT_EQ(warnings[6].rfind("/etc/flowtop/flowtoprc:9: hide_columns: unknown column", 0), 0u)
        << warnings[6];
    // The good lines around them still count; a bad value leaves the previous one.
    EXPECT_EQ(o.interval.count(), 3000);
    EXPECT_TRUE(o.sort.empty());
    EXPECT_TRUE(o.filter.empty());
    EXPECT_TRUE(o.bars);
}

TEST(ConfigFile, SystemThenUserThenCommandLine) {
    TempDir dir;
    auto system = dir.write("system",
                            "interval = 5\nsort = bytes\nbars = yes\nprotocols = tcp\n"
                            "geoip_db = /sys.mmdb\nfamily = ipv4\n");
    auto user = dir.write("user", "interval = 2\nreverse = yes\nprotocols = udp\n");
    std::vector<std::string> warnings;
    auto o = load({}, {system, user}, warnings);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(o.interval.count(), 2000);  // user over system
    EXPECT_EQ(o.sort, "bytes");           // system, user silent
    EXPECT_TRUE(o.bars);
    EXPECT_TRUE(o.reverse);
    EXPECT_EQ(o.protocols, (std::vector<std::uint8_t>{IPPROTO_UDP}));  // replaced, not added

    o = load({"-t", "0.5", "--sort", "age", "-T", "-S", "--geoip-db", "/cli.mmdb", "-6"},
             {system, user}, warnings);
    EXPECT_EQ(o.interval.count(), 500);  // command line over both
    EXPECT_EQ(o.sort, "age");
    EXPECT_EQ(o.protocols, (std::vector<std::uint8_t>{IPPROTO_TCP, IPPROTO_SCTP}));
    EXPECT_EQ(o.geoip_dbs, (std::vector<std::string>{"/cli.mmdb"}));
    EXPECT_TRUE(o.only_ipv6);
    EXPECT_FALSE(o.only_ipv4);  // -6 replaces the file's family
    EXPECT_TRUE(o.bars);        // no flag for it: the file's value stays
}

TEST(ConfigFile, MissingFilesAreSilentAndConfigFlagReadsOnlyThatFile) {
    TempDir dir;
    std::vector<std::string> warnings;
    auto o = load({}, {dir.path + "/none", dir.path + "/neither"}, warnings);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(o.interval.count(), 1000);

    auto mine = dir.write("mine", "interval = 7\n");
    std::vector<std::string> w2;
    std::string arg = "--config=" + mine;
    std::vector<char*> argv = {const_cast<char*>("flowtop"), arg.data(), nullptr};
    o = load_options(2, argv.data(), w2);
    EXPECT_EQ(o.interval.count(), 7000);
    EXPECT_EQ(save_path(o), mine);
}

TEST(ConfigFile, SaveLoadsBackToTheSameSettingsAndKeepsComments) {
    TempDir dir;
    auto path = dir.write("flowtoprc",
                          "# my settings\ninterval = 9\n\n# colours hurt\ncolor = yes\n"
                          "some_future_key = 1\n");
    Options o;
    o.interval = std::chrono::milliseconds(1500);
    o.sort = "dport";
    o.reverse = true;
    o.rate_window = "40s";
    o.bits = true;
    o.bars = true;
    o.filter = "proto:udp and not port:53";
    o.hidden_protocols = {IPPROTO_SCTP};
    o.no_dns = true;
    o.port_numbers = true;
    o.color = false;
    o.geoip_dbs = {"/x/a.mmdb"};
    o.hidden_columns = {"process", "cc"};
    save_config(path, o);
    const auto text = slurp(path);
    EXPECT_EQ(text.rfind("# my settings\ninterval = 1.5\n\n# colours hurt\ncolor = no\n"
                         "some_future_key = 1\n",
                         0),
              0u)
        << text;
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
    // No temporary file left beside it.
    std::size_t files = 0;
    for (auto& e : std::filesystem::directory_iterator(dir.path)) files += e.is_regular_file();
    EXPECT_EQ(files, 1u);

    Options back;
    std::vector<std::string> warnings;
    ASSERT_TRUE(apply_config_file(path, back, warnings));
    ASSERT_EQ(warnings.size(), 1u);  // the unknown key the user wrote, kept as written
    EXPECT_NE(warnings[0].find(":6: unknown key \"some_future_key\""), std::string::npos);
    EXPECT_EQ(config_text(back), config_text(o));
}

TEST(ConfigFile, SaveMakesTheDirectoryAndANewFileSaysWhoWroteIt) {
    TempDir dir;
    auto path = dir.path + "/a/b/flowtoprc";
    save_config(path, Options{});
    const auto text = slurp(path);
    EXPECT_EQ(text.rfind("# flowtop settings", 0), 0u) << text;
    EXPECT_NE(text.find("\ninterval = 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nsort = rate\n"), std::string::npos) << text;
}

TEST(ConfigFile, UserPathFollowsXdgThenHome) {
    EnvVar sudo("SUDO_USER", nullptr);
    {
        EnvVar xdg("XDG_CONFIG_HOME", "/xdg");
        EXPECT_EQ(user_config_path(), "/xdg/flowtop/flowtoprc");
    }
    EnvVar xdg("XDG_CONFIG_HOME", nullptr);
    EnvVar home("HOME", "/home/someone");
    EXPECT_EQ(user_config_path(), "/home/someone/.config/flowtop/flowtoprc");
}

TEST(ConfigFile, UnderSudoTheInvokingUsersFile) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (sudo's case)";
    // Debian's base-passwd always has "nobody" (home /nonexistent).
    EnvVar sudo("SUDO_USER", "nobody");
    EnvVar xdg("XDG_CONFIG_HOME", "/root/.config");
    EXPECT_EQ(user_config_path(), "/nonexistent/.config/flowtop/flowtoprc");
}

TEST(ConfigFile, DetectorAndFlowLogKeysAreServiceKeysTheSaveKeepsAsWritten) {
    Options o;
    std::vector<std::string> warnings;
    apply_config_text(
        "detect.scan.ports = 20\n"
        "detect.scan.ports = many\n"
        "detect.nosuch = 1\n"
        "log = /var/log/flowtop/flows.log\n"
        "log_rotate = 10M,3\n"
        "log_rotate = big\n",
        "rc", o, warnings);
    ASSERT_EQ(warnings.size(), 3u);
    EXPECT_EQ(warnings[0].rfind("rc:2: detect.scan.ports: invalid value 'many'", 0), 0u)
        << warnings[0];
    EXPECT_EQ(warnings[1].rfind("rc:3: detect.nosuch: unknown setting 'nosuch'", 0), 0u)
        << warnings[1];
    EXPECT_EQ(warnings[2].rfind("rc:6: log_rotate: 'big': use SIZE,COUNT", 0), 0u) << warnings[2];
    EXPECT_EQ(detect_config(o).scan_ports, 20u);
    EXPECT_EQ(o.log_file, "/var/log/flowtop/flows.log");
    EXPECT_EQ(o.log_rotate_size, 10u << 20);
    EXPECT_EQ(o.log_rotate_count, 3u);
    // What the file says is echoed escaped: a terminal reading stderr gets no escape codes.
    std::vector<std::string> escaped;
    apply_config_text("detect.scan.ports = \x1b[2J\n", "rc", o, escaped);
    ASSERT_EQ(escaped.size(), 1u);
    EXPECT_EQ(escaped[0].find('\x1b'), std::string::npos) << escaped[0];
    // Not view settings: the save key's own text leaves them out.
    EXPECT_EQ(config_text(o).find("detect."), std::string::npos);
    EXPECT_EQ(config_text(o).find("log"), config_text(o).find("log_bars"));
}

TEST(ConfigFile, ALogInAFlowtoprcIsTheDaemonsOnly) {
    TempDir dir;
    const auto rc = dir.write("rc", "log = " + dir.path + "/flows.log\nlog_rotate = 1M,2\n");
    std::vector<std::string> warnings;
    {
        const char* argv[] = {"flowtop", "--batch", nullptr};
        auto o = load_options(2, const_cast<char**>(argv), {rc}, warnings);
        EXPECT_EQ(o.log_file, "");
    }
    {
        const char* argv[] = {"flowtop", "--daemon", nullptr};
        auto o = load_options(2, const_cast<char**>(argv), {rc}, warnings);
        EXPECT_EQ(o.log_file, dir.path + "/flows.log");
        EXPECT_EQ(o.log_rotate_count, 2u);
    }
    {
        const char* argv[] = {"flowtop",  "--daemon",     "--log", "/x.log",
                              "--detect", "scan.hosts=9", nullptr};
        auto o = load_options(6, const_cast<char**>(argv), {rc}, warnings);
        EXPECT_EQ(o.log_file, "/x.log");  // the command line wins
        EXPECT_EQ(detect_config(o).scan_hosts, 9u);
    }
    EXPECT_TRUE(warnings.empty()) << warnings.front();
}

TEST(ConfigFile, ReloadTakesDetectorsAndTheLogAndNamesWhatNeedsARestart) {
    Options running;
    running.daemon = true;
    running.log_file = "/a.log";
    Options next = running;
    next.detect_settings = {"scan.ports=5", "exfil.allow=NL"};
    next.log_file = "/b.log";
    next.log_rotate_size = 1024;
    next.log_rotate_count = 2;
    next.interval = std::chrono::milliseconds(2000);
    next.bars = true;
    auto r = compare_for_reload(running, next);
    EXPECT_TRUE(r.detect);
    EXPECT_TRUE(r.log);
    ASSERT_EQ(r.changes.size(), 4u);
    EXPECT_EQ(r.changes[0], "detect.scan.ports = 5 (was 100)");
    EXPECT_EQ(r.changes[1], "detect.exfil.allow = NL (was )");
    EXPECT_EQ(r.changes[2], "log = /b.log (was /a.log)");
    EXPECT_EQ(r.changes[3], "log_rotate = 1024,2 (was off)");
    ASSERT_EQ(r.restart.size(), 2u);
    EXPECT_EQ(r.restart[0], "interval = 2 (was 1): needs a restart");
    EXPECT_EQ(r.restart[1], "bars = yes (was no): a live view setting, unused by --daemon");

    // A log that was not open at start cannot be started by a reload.
    running.log_file.clear();
    r = compare_for_reload(running, next);
    EXPECT_FALSE(r.log);
    EXPECT_NE(r.restart[0].find("needs a restart"), std::string::npos) << r.restart[0];
    EXPECT_TRUE(compare_for_reload(next, next).changes.empty());
    EXPECT_TRUE(compare_for_reload(next, next).restart.empty());
}
