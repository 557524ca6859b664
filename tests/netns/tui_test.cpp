// The curses view in a real terminal (tmux) on a live namespace with real traffic: keys are
// typed with send-keys and the screen is read with capture-pane.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <thread>

#include "harness.hpp"

using namespace flowtop::test;

namespace {

class Tui : public ::testing::Test {
protected:
    void SetUp() override {
        net.a.set_sysctl("net.netfilter.nf_conntrack_acct", "0");
        net.a.set_sysctl("net.netfilter.nf_conntrack_timestamp", "0");
        session = "fttui" + std::to_string(getpid()) + "x" + std::to_string(counter++);
    }
    void TearDown() override { sh("tmux kill-session -t " + session + " 2>/dev/null"); }

    // Starts flowtop in a shell that reports how it ended and the terminal modes afterwards.
    void start(const std::string& args = "") {
        const std::string cmd = net.a.exec(std::string(FLOWTOP_BINARY) + " " + args) +
                                "; echo EXITED \\$?; stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo; sleep 30";
        must("tmux new-session -d -s " + session + " -x 120 -y 40 \"" + cmd + "\"");
        ASSERT_TRUE(wait_for("DESTINATION")) << screen();
    }
    std::string screen() {
        std::string out;
        sh("tmux capture-pane -p -t " + session, &out);
        return out;
    }
    void keys(const std::string& k) { must("tmux send-keys -t " + session + " " + k); }
    bool wait_for(const std::string& text, std::chrono::milliseconds timeout = 5s) {
        auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (screen().find(text) != std::string::npos) return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }
    bool wait_gone(const std::string& text, std::chrono::milliseconds timeout = 5s) {
        auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (screen().find(text) == std::string::npos) return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }
    // The screen line showing the flow to `port`.
    std::string line_of(const std::string& port) {
        std::istringstream in(screen());
        for (std::string line; std::getline(in, line);)
            if (line.find("198.51.100.1 ") != std::string::npos &&
                line.find(" " + port + " ") != std::string::npos)
                return line;
        return "";
    }
    std::size_t row_of(const std::string& port) {
        std::istringstream in(screen());
        std::size_t n = 0;
        for (std::string line; std::getline(in, line); ++n)
            if (line.find(" " + port + " ") != std::string::npos) return n;
        return std::string::npos;
    }

    TestNet net;
    std::string session;
    static inline int counter = 0;
};

}  // namespace

TEST_F(Tui, ShowsAKnownFlowWithBothByteCountsAndQuitsCleanly) {
    start();
    PacedSender sender(net, 7101, 300'000, 6s);
    ASSERT_TRUE(wait_for(" 7101 ")) << screen();
    std::this_thread::sleep_for(1500ms);
    const std::string line = line_of("7101");
    // proto, state, destination, port, then ↑bytes ↓bytes ↑rate ↓rate
    std::regex shape(R"(tcp\s+ESTABLISHED\s+198\.51\.100\.1\s+7101\s+.*\d+(\.\d)? [kM]?B\s+\d+(\.\d)? [kM]?B\s+\d+(\.\d)? [kM]?B/s\s+\d+(\.\d)? [kM]?B/s)");
    EXPECT_TRUE(std::regex_search(line, shape)) << line;
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "1");
    keys("q");
    ASSERT_TRUE(wait_for("EXITED 0")) << screen();
    // stty runs after flowtop: its report comes a moment later.
    EXPECT_TRUE(wait_for("icanon")) << "terminal modes restored: " << screen();
    EXPECT_TRUE(wait_for("\necho")) << screen();
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "0");
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_timestamp"), "0");
}

TEST_F(Tui, SortColumnAndReverseChangeTheOrder) {
    start();
    PacedSender fast(net, 7201, 400'000, 8s);
    PacedSender slow(net, 7202, 40'000, 8s);
    ASSERT_TRUE(wait_for(" 7201 ") && wait_for(" 7202 ")) << screen();
    std::this_thread::sleep_for(1500ms);
    EXPECT_LT(row_of("7201"), row_of("7202")) << screen();  // busiest first
    keys("'>'");  // next column: orig_rate, still busiest first
    ASSERT_TRUE(wait_for("sort: orig_rate"));
    keys("r");
    ASSERT_TRUE(wait_for("(reversed)"));
    std::this_thread::sleep_for(300ms);
    EXPECT_GT(row_of("7201"), row_of("7202")) << screen();
}

TEST_F(Tui, FilterPromptFiltersAndShowsErrors) {
    start();
    PacedSender a(net, 7301, 50'000, 8s);
    PacedSender b(net, 7302, 50'000, 8s);
    ASSERT_TRUE(wait_for(" 7301 ") && wait_for(" 7302 ")) << screen();
    keys("/ port:7301 Enter");
    ASSERT_TRUE(wait_for("filter: port:7301"));
    EXPECT_TRUE(wait_gone(" 7302 ")) << screen();
    EXPECT_NE(screen().find(" 7301 "), std::string::npos);
    // Replace it with a boolean expression.
    keys("/ " + std::string(9, ' ').replace(0, 9, "BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace") +
         " 'port:7301 or port:7302' Enter");
    ASSERT_TRUE(wait_for("filter: port:7301 or port:7302")) << screen();
    EXPECT_TRUE(wait_for(" 7302 ")) << screen();
    // A bad expression: the error at its column, and the last valid filter stays.
    keys("/ ' and' Enter");
    ASSERT_TRUE(wait_for("ends too early")) << screen();
    EXPECT_NE(screen().find("^ expression ends too early"), std::string::npos);
    EXPECT_NE(screen().find(" 7302 "), std::string::npos);
    keys("Escape");
    EXPECT_TRUE(wait_gone("filter: port")) << screen();
}

TEST_F(Tui, SpacePausesTheNumbers) {
    start();
    PacedSender s(net, 7401, 200'000, 10s);
    ASSERT_TRUE(wait_for(" 7401 ")) << screen();
    std::this_thread::sleep_for(1200ms);
    keys("Space");
    ASSERT_TRUE(wait_for("PAUSED"));
    const std::string frozen = line_of("7401");
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(line_of("7401"), frozen);
    keys("Space");
    ASSERT_TRUE(wait_gone("PAUSED"));
    std::this_thread::sleep_for(1500ms);
    EXPECT_NE(line_of("7401"), frozen) << "collection went on while paused";
}

TEST_F(Tui, HelpTabsAndResize) {
    start();
    keys("?");
    ASSERT_TRUE(wait_for("Keys (any key closes this help)")) << screen();
    keys("x");
    ASSERT_TRUE(wait_gone("Keys (any key closes this help)"));
    keys("Tab");
    ASSERT_TRUE(wait_for("[Processes]")) << screen();
    EXPECT_NE(screen().find("PROCESS"), std::string::npos);
    keys("Tab Tab Tab");
    ASSERT_TRUE(wait_for("[Flows]"));
    ASSERT_TRUE(wait_for("AGE")) << screen();  // 120 columns: every column
    must("tmux resize-window -t " + session + " -x 80 -y 24");
    ASSERT_TRUE(wait_gone("AGE")) << screen();
    EXPECT_NE(screen().find("DESTINATION"), std::string::npos);
    must("tmux resize-window -t " + session + " -x 30 -y 8");
    ASSERT_TRUE(wait_for("terminal too small")) << screen();
    must("tmux resize-window -t " + session + " -x 120 -y 40");
    ASSERT_TRUE(wait_for("DESTINATION"));
    keys("q");
    ASSERT_TRUE(wait_for("EXITED 0")) << screen();
}

TEST_F(Tui, SigtermRestoresTheTerminalAndSettings) {
    start();
    sh("pkill -TERM -f '^" + std::string(FLOWTOP_BINARY) + "$'");
    ASSERT_TRUE(wait_for("EXITED 143")) << screen();
    EXPECT_TRUE(wait_for("icanon")) << screen();
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "0");
}
