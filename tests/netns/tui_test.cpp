// The curses view in a real terminal (tmux) on a live namespace with real traffic: keys are
// typed with send-keys and the screen is read with capture-pane.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <thread>

#include "harness.hpp"
#include "mmdb_writer.hpp"

using namespace flowtop::test;

namespace {

class Tui : public ::testing::Test {
  protected:
    void SetUp() override {
        net.a.set_sysctl("net.netfilter.nf_conntrack_acct", "0");
        net.a.set_sysctl("net.netfilter.nf_conntrack_timestamp", "0");
    }

    // Starts flowtop in a shell that reports how it ended and the terminal modes afterwards.
    void start(const std::string& args = "") {
        const std::string cmd =
            net.a.exec(std::string(FLOWTOP_BINARY) + " " + args) +
            "; echo EXITED \\$?; stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo; sleep 30";
        tmux.start(cmd, 120, 40);
        ASSERT_TRUE(tmux.wait_for("DESTINATION")) << tmux.screen();
    }
    // The screen line showing the flow to `port`.
    std::string line_of(const std::string& port) {
        std::istringstream in(tmux.screen());
        for (std::string line; std::getline(in, line);)
            if (line.find("198.51.100.1 ") != std::string::npos &&
                line.find(" " + port + " ") != std::string::npos)
                return line;
        return "";
    }
    std::size_t row_of(const std::string& port) {
        std::istringstream in(tmux.screen());
        std::size_t n = 0;
        for (std::string line; std::getline(in, line); ++n)
            if (line.find(" " + port + " ") != std::string::npos) return n;
        return std::string::npos;
    }

    TestNet net;
    TmuxSession tmux{"fttui"};
};

}  // namespace

TEST_F(Tui, ShowsAKnownFlowWithBothByteCountsAndQuitsCleanly) {
    start();
    PacedSender sender(net, 7101, 300'000, 6s);
    ASSERT_TRUE(tmux.wait_for(" 7101 ")) << tmux.screen();
    std::this_thread::sleep_for(1500ms);
    const std::string line = line_of("7101");
    // proto, state, destination, port, then ↑bytes ↓bytes ↑rate ↓rate
    std::regex shape(
        R"(tcp\s+ESTABLISHED\s+198\.51\.100\.1\s+7101\s+.*\d+(\.\d)? [kM]?B\s+\d+(\.\d)? [kM]?B\s+\d+(\.\d)? [kM]?B/s\s+\d+(\.\d)? [kM]?B/s)");
    EXPECT_TRUE(std::regex_search(line, shape)) << line;
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "1");
    tmux.keys("q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
    // stty runs after flowtop: its report comes a moment later.
    EXPECT_TRUE(tmux.wait_for("icanon")) << "terminal modes restored: " << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("\necho")) << tmux.screen();
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "0");
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_timestamp"), "0");
}

TEST_F(Tui, SortColumnAndReverseChangeTheOrder) {
    start();
    PacedSender fast(net, 7201, 400'000, 8s);
    PacedSender slow(net, 7202, 40'000, 8s);
    ASSERT_TRUE(tmux.wait_for(" 7201 ") && tmux.wait_for(" 7202 ")) << tmux.screen();
    std::this_thread::sleep_for(1500ms);
    EXPECT_LT(row_of("7201"), row_of("7202")) << tmux.screen();  // busiest first
    tmux.keys("'>'");  // next column: orig_rate, still busiest first
    ASSERT_TRUE(tmux.wait_for("sort: orig_rate"));
    tmux.keys("r");
    ASSERT_TRUE(tmux.wait_for("(reversed)"));
    std::this_thread::sleep_for(300ms);
    EXPECT_GT(row_of("7201"), row_of("7202")) << tmux.screen();
}

TEST_F(Tui, FilterPromptFiltersAndShowsErrors) {
    start();
    PacedSender a(net, 7301, 50'000, 8s);
    PacedSender b(net, 7302, 50'000, 8s);
    ASSERT_TRUE(tmux.wait_for(" 7301 ") && tmux.wait_for(" 7302 ")) << tmux.screen();
    tmux.keys("/ port:7301 Enter");
    ASSERT_TRUE(tmux.wait_for("filter: port:7301"));
    EXPECT_TRUE(tmux.wait_gone(" 7302 ")) << tmux.screen();
    EXPECT_NE(tmux.screen().find(" 7301 "), std::string::npos);
    // Replace it with a boolean expression.
    tmux.keys("/ " +
              std::string(9, ' ').replace(
                  0, 9, "BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace") +
              " 'port:7301 or port:7302' Enter");
    ASSERT_TRUE(tmux.wait_for("filter: port:7301 or port:7302")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for(" 7302 ")) << tmux.screen();
    // A bad expression: the error at its column, and the last valid filter stays.
    tmux.keys("/ ' and' Enter");
    ASSERT_TRUE(tmux.wait_for("ends too early")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("^ expression ends too early"), std::string::npos);
    EXPECT_NE(tmux.screen().find(" 7302 "), std::string::npos);
    tmux.keys("Escape");
    EXPECT_TRUE(tmux.wait_gone("filter: port")) << tmux.screen();
}

TEST_F(Tui, SpacePausesTheNumbers) {
    start();
    PacedSender s(net, 7401, 200'000, 10s);
    ASSERT_TRUE(tmux.wait_for(" 7401 ")) << tmux.screen();
    std::this_thread::sleep_for(1200ms);
    tmux.keys("Space");
    ASSERT_TRUE(tmux.wait_for("PAUSED"));
    const std::string frozen = line_of("7401");
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(line_of("7401"), frozen);
    tmux.keys("Space");
    ASSERT_TRUE(tmux.wait_gone("PAUSED"));
    std::this_thread::sleep_for(1500ms);
    EXPECT_NE(line_of("7401"), frozen) << "collection went on while paused";
}

TEST_F(Tui, HelpTabsAndResize) {
    start();
    tmux.keys("?");
    ASSERT_TRUE(tmux.wait_for("Keys (any key closes this help)")) << tmux.screen();
    tmux.keys("x");
    ASSERT_TRUE(tmux.wait_gone("Keys (any key closes this help)"));
    tmux.keys("Tab");
    ASSERT_TRUE(tmux.wait_for("[Processes]")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("PROCESS"), std::string::npos);
    tmux.keys("Tab");
    ASSERT_TRUE(tmux.wait_for("[Clients]"))
        << tmux.screen();  // the LAN clients, after the processes
    EXPECT_NE(tmux.screen().find("CLIENT"), std::string::npos) << tmux.screen();
    tmux.keys("Tab Tab Tab");
    ASSERT_TRUE(tmux.wait_for("[Alerts]")) << tmux.screen();  // the fifth tab (issue 12)
    tmux.keys("Tab");
    ASSERT_TRUE(tmux.wait_for("[Table]")) << tmux.screen();  // conntrack's own consumers (issue 16)
    EXPECT_NE(tmux.screen().find("ENTRIES"), std::string::npos) << tmux.screen();
    tmux.keys("Tab");
    ASSERT_TRUE(tmux.wait_for("[Flows]")) << tmux.screen();
    ASSERT_TRUE(tmux.wait_for("AGE")) << tmux.screen();  // 120 columns: every column
    must("tmux resize-window -t " + tmux.name() + " -x 80 -y 24");
    ASSERT_TRUE(tmux.wait_gone("AGE")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("DESTINATION"), std::string::npos);
    // Issue 16: at 80x24 the process and the country stay, and every line fits.
    EXPECT_NE(tmux.screen().find("PROCESS"), std::string::npos) << tmux.screen();
    EXPECT_NE(tmux.screen().find(" CC "), std::string::npos) << tmux.screen();
    EXPECT_NE(tmux.screen().find("\u2193RATE"), std::string::npos) << tmux.screen();
    must("tmux resize-window -t " + tmux.name() + " -x 30 -y 8");
    ASSERT_TRUE(tmux.wait_for("terminal too small")) << tmux.screen();
    must("tmux resize-window -t " + tmux.name() + " -x 120 -y 40");
    ASSERT_TRUE(tmux.wait_for("DESTINATION"));
    tmux.keys("q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
}

TEST_F(Tui, SigtermRestoresTheTerminalAndSettings) {
    start();
    sh("pkill -TERM -f '^" + std::string(FLOWTOP_BINARY) + "$'");
    ASSERT_TRUE(tmux.wait_for("EXITED 143")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("icanon")) << tmux.screen();
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "0");
}

// iftop's n (names), N (ports), 1 2 3 (rate windows) and nethogs' m (units), with a real
// dnsmasq answering the PTR query for the destination.
TEST_F(Tui, IftopAndNethogsKeys) {
    const std::string etc = "/etc/netns/" + net.a.name();
    must("mkdir -p " + etc +
         " && printf 'nameserver 198.51.100.2\\noptions timeout:1 "
         "attempts:1\\n' > " +
         etc + "/resolv.conf");
    struct RemoveEtc {
        std::string dir;
        ~RemoveEtc() { sh("rm -rf " + dir); }
    } remove_etc{etc};
    // Killed with namespace b.
    must(
        net.b.exec("dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces "
                   "--listen-address=198.51.100.2 --except-interface=lo --pid-file= "
                   "--ptr-record=1.100.51.198.in-addr.arpa,a.fttui.test"));
    start("--no-config");
    PacedSender s(net, 443, 100'000, 12s);
    ASSERT_TRUE(tmux.wait_for(" https ")) << tmux.screen();  // tcp.conf names port 443
    ASSERT_TRUE(tmux.wait_for("a.fttui.test")) << tmux.screen();
    tmux.keys("N");
    ASSERT_TRUE(tmux.wait_for(" 443 ")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_gone(" https ")) << tmux.screen();
    tmux.keys("n");
    ASSERT_TRUE(tmux.wait_gone("a.fttui.test")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("198.51.100.1 "), std::string::npos) << tmux.screen();
    tmux.keys("n N");
    ASSERT_TRUE(tmux.wait_for("a.fttui.test")) << tmux.screen();
    ASSERT_TRUE(tmux.wait_for(" https ")) << tmux.screen();
    tmux.keys("3");
    ASSERT_TRUE(tmux.wait_for("sort: rate  rates: 40 s")) << tmux.screen();
    tmux.keys("1");
    ASSERT_TRUE(tmux.wait_for("sort: rate  rates: 2 s")) << tmux.screen();
    tmux.keys("m");  // bytes/s -> bits/s
    ASSERT_TRUE(tmux.wait_for("bit/s")) << tmux.screen();
    tmux.keys("m");  // -> cumulative
    ASSERT_TRUE(tmux.wait_for("\u2191TOTAL")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_gone("bit/s")) << tmux.screen();
    tmux.keys("m");  // -> bytes/s again
    ASSERT_TRUE(tmux.wait_for("\u2191RATE")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("B/s"), std::string::npos) << tmux.screen();
    tmux.keys("?");
    ASSERT_TRUE(tmux.wait_for("save the settings")) << tmux.screen();
    tmux.keys("x q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
}

// W writes what the view shows; a second flowtop started from that file shows the same, and
// saving again leaves the file as it was (it loads back to the same settings).
TEST_F(Tui, SaveKeyWritesSettingsThatLoadBack) {
    char tmpl[] = "/tmp/fttui-rc-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    struct RemoveDir {
        std::string dir;
        ~RemoveDir() { sh("rm -rf " + dir); }
    } remove_dir{dir};
    const std::string rc = dir + "/flowtoprc";
    must("printf '# mine\\ninterval = 0.5\\n' > " + rc);
    start("--config " + rc);
    tmux.keys("'>' r B 2 N b U");
    ASSERT_TRUE(tmux.wait_for("sort: orig_rate (reversed)  rates: 10 s")) << tmux.screen();
    tmux.keys("W");
    ASSERT_TRUE(tmux.wait_for("settings saved to " + rc)) << tmux.screen();
    tmux.keys("q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
    std::string saved = must("cat " + rc);
    for (const char* line :
         {"# mine\ninterval = 0.5\n", "\nsort = orig_rate\n", "\nreverse = yes\n",
          "\nrate_window = 10s\n", "\nbars = yes\n", "\nservice_names = no\n", "\nunits = bits\n",
          "\nhide_protocols = udp\n"})
        EXPECT_NE(saved.find(line), std::string::npos) << line << " in\n" << saved;
    start("--config " + rc);
    ASSERT_TRUE(tmux.wait_for("sort: orig_rate (reversed)  rates: 10 s")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("every 0.5 s")) << tmux.screen();
    tmux.keys("F2");
    ASSERT_TRUE(tmux.wait_for("settings saved to " + rc)) << tmux.screen();
    tmux.keys("q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
    EXPECT_EQ(must("cat " + rc), saved);
}

// The detail panel (Enter) names the destination's autonomous system, and asn: / org: filter
// on it; fixture databases place the documentation network 198.51.100.0/24.
TEST_F(Tui, DetailPanelShowsTheAsOrganisationAndAsnFilters) {
    char tmpl[] = "/tmp/fttui-geo-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    struct RemoveDir {
        std::string dir;
        ~RemoveDir() { sh("rm -rf " + dir); }
    } remove_dir{dir};
    auto [city, asn] = write_dbip_fixtures(dir);
    start("--no-config -n --geoip-db " + city + " --geoip-db " + asn);
    PacedSender s(net, 7601, 100'000, 10s);
    ASSERT_TRUE(tmux.wait_for(" 7601 ")) << tmux.screen();
    tmux.keys("/ asn:AS64500 Enter");
    ASSERT_TRUE(tmux.wait_for("filter: asn:AS64500")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for(" 7601 ")) << tmux.screen();
    tmux.keys("Enter");
    ASSERT_TRUE(tmux.wait_for("Flow details")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("dst_org: Example Transit")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("dst_asn: 64500"), std::string::npos) << tmux.screen();
    tmux.keys(
        "Enter / BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace "
        "BSpace 'org:nomatch' Enter");
    ASSERT_TRUE(tmux.wait_for("filter: org:nomatch")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_gone(" 7601 ")) << tmux.screen();
    tmux.keys("q");
    ASSERT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
}
