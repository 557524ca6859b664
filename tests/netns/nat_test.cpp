// The router's view of NAT, offloaded flows and deleting entries, against the real kernel: a
// LAN client, a router that masquerades the LAN towards the server's link and forwards its
// port 8080 to the client's port 80, and a server (tests/netns/harness.hpp RouterNet).
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <thread>

#include "harness.hpp"

using namespace flowtop::test;

namespace {

constexpr const char* k_wan = "198.51.100.254";  // the router's address on the server's link

class Nat : public ::testing::Test {
  protected:
    void SetUp() override {
        // Masquerade what leaves the LAN through r1; port 8080 of the WAN address goes to the
        // client's port 80 (a port forward).
        must(net.router.exec(
            "nft 'table ip ftnat { chain post { type nat hook postrouting priority 100; "
            "oifname \"r1\" ip saddr 192.0.2.0/24 masquerade; }; chain pre { type nat hook "
            "prerouting priority -100; iifname \"r1\" tcp dport 8080 dnat to 192.0.2.1:80; "
            "}; }'"));
    }

    // Idle connections that stay open for the test (bounded by timeout): the masqueraded one
    // (client to server port 7300), the port-forwarded one (server to WAN:8080, i.e. the
    // client's port 80) and an IPv6 one without NAT (client to server port 7301).
    void connect_all() {
        auto bg = [](const Namespace& ns, const std::string& cmd) {
            must(ns.exec("sh -c '" + cmd + "' >/dev/null 2>&1 &"));
        };
        bg(net.server, "timeout 40 socat -u TCP4-LISTEN:7300,reuseaddr OPEN:/dev/null");
        bg(net.server, "timeout 40 socat -u TCP6-LISTEN:7301,reuseaddr OPEN:/dev/null");
        bg(net.client, "timeout 40 socat -u TCP4-LISTEN:80,reuseaddr OPEN:/dev/null");
        std::this_thread::sleep_for(500ms);
        bg(net.client, "sleep 35 | timeout 40 socat -u - TCP4:198.51.100.1:7300");
        bg(net.client, "sleep 35 | timeout 40 socat -u - TCP6:[2001:db8:2::1]:7301");
        bg(net.server, "sleep 35 | timeout 40 socat -u - TCP4:198.51.100.254:8080");
        for (int i = 0; i < 50 && entries("").size() < 3; ++i) std::this_thread::sleep_for(100ms);
    }
    // The router's conntrack entries (conntrack -L lines) with `filter`, TCP only.
    std::vector<std::string> entries(const std::string& filter) {
        std::string out;
        sh(net.router.exec("conntrack -L -p tcp " + filter + " 2>/dev/null"), &out);
        std::vector<std::string> lines;
        std::istringstream in(out);
        for (std::string line; std::getline(in, line);)
            if (line.find("dport=") != std::string::npos) lines.push_back(line);
        return lines;
    }
    // The source port the server sees for the masqueraded connection (ss in the server).
    int port_seen_by_server() {
        std::string out;
        sh(net.server.exec("ss -Htn state established '( sport = :7300 )'"), &out);
        std::smatch m;
        if (std::regex_search(out, m, std::regex(R"(198\.51\.100\.254:(\d+))")))
            return std::stoi(m[1]);
        return -1;
    }

    // The live view in tmux at the size most terminals open at.
    void start_tui(const std::string& args, int width = 80) {
        const std::string cmd = net.router.exec(std::string(FLOWTOP_BINARY) + " " + args) +
                                "; echo EXITED \\$?; sleep 30";
        tmux.start(cmd, width, 24);
        ASSERT_TRUE(tmux.wait_for("DESTINATION")) << tmux.screen();
    }

    RouterNet net;
    TmuxSession tmux{"ftnat"};
};

Json flow_to(const Frame& frame, int dport) {
    auto flows = frame.find("tcp", dport);
    return flows.empty() ? Json(nullptr) : flows.front();
}

}  // namespace

TEST_F(Nat, JsonSaysWhichEndsWereTranslatedAndKeepsTheReplyTuple) {
    connect_all();
    ASSERT_EQ(entries("").size(), 3u) << "three connections through the router";
    Flowtop ft(net.router, {"-o", "json", "-c", "2", "-n", "-G", "-t", "0.5"});
    auto frames = ft.all_frames();
    ASSERT_FALSE(frames.empty()) << ft.stderr_text();
    const Frame& f = frames.back();

    const Json snat = flow_to(f, 7300);
    ASSERT_FALSE(snat.is_null());
    EXPECT_EQ(snat["nat"], "snat");
    EXPECT_EQ(snat["src"], "192.0.2.1");
    // The post-NAT source: the router's WAN address and the port the server really sees.
    EXPECT_EQ(snat["reply_dst"], k_wan);
    EXPECT_EQ(snat["reply_dport"], port_seen_by_server());

    const Json dnat = flow_to(f, 8080);
    ASSERT_FALSE(dnat.is_null());
    EXPECT_EQ(dnat["nat"], "dnat");
    EXPECT_EQ(dnat["dst"], k_wan);
    EXPECT_EQ(dnat["reply_src"], "192.0.2.1");  // the internal target of the port forward
    EXPECT_EQ(dnat["reply_sport"], 80);

    const Json plain = flow_to(f, 7301);
    ASSERT_FALSE(plain.is_null());
    EXPECT_TRUE(plain["nat"].is_null()) << plain.dump();
    EXPECT_EQ(plain["offloaded"], false);
}

TEST_F(Nat, FilterTermsSelectByTranslationAndHostMatchesEitherTuple) {
    connect_all();
    auto ports = [&](const std::string& expr) {
        Flowtop ft(net.router, {"-o", "json", "-c", "1", "-n", "-G", "-T", "--filter", expr});
        std::vector<int> out;
        for (const auto& frame : ft.all_frames())
            for (const auto& flow : frame.flows) out.push_back(flow["dport"].get<int>());
        std::sort(out.begin(), out.end());
        return out;
    };
    EXPECT_EQ(ports("nat:snat"), std::vector<int>{7300});
    EXPECT_EQ(ports("nat:dnat"), std::vector<int>{8080});
    EXPECT_EQ(ports("nat:none"), std::vector<int>{7301});
    EXPECT_TRUE(ports("nat:both").empty());
    // The internal target is only in the reply tuple; the WAN address only in the masqueraded
    // flow's reply (and as the port forward's public destination).
    EXPECT_EQ(ports("host:192.0.2.1 and port:8080"), std::vector<int>{8080});
    EXPECT_EQ(ports("host:198.51.100.254"), (std::vector<int>{7300, 8080}));
}

// The screen line that holds `text`, or "".
std::string line_with(const std::string& screen, const std::string& text) {
    std::istringstream in(screen);
    for (std::string line; std::getline(in, line);)
        if (line.find(text) != std::string::npos) return line;
    return "";
}

TEST_F(Nat, LiveViewMarksTranslatedFlowsAt80ColumnsAndShowsBothSidesInTheDetails) {
    connect_all();
    const int wan_port = port_seen_by_server();
    ASSERT_GT(wan_port, 0);
    start_tui("-n -G -T");
    tmux.keys("N");  // port numbers: 8080, not http-alt
    ASSERT_TRUE(tmux.wait_for(" 7301 ") && tmux.wait_for(" 8080 ") && tmux.wait_for(" 7300 "))
        << tmux.screen();
    const std::string s = tmux.screen();
    EXPECT_NE(line_with(s, "DESTINATION").find(" NAT "), std::string::npos) << s;
    EXPECT_NE(line_with(s, " 7300 ").find(" snat "), std::string::npos) << s;
    EXPECT_NE(line_with(s, " 8080 ").find(" dnat "), std::string::npos) << s;
    // The forward's internal target, whole, where the public address would not fit with it.
    EXPECT_NE(line_with(s, " 8080 ").find("192.0.2.1:80 "), std::string::npos) << s;
    const std::string plain = line_with(s, " 7301 ");
    EXPECT_EQ(plain.find("nat "), std::string::npos) << s;
    for (const auto& line : {line_with(s, " 7300 "), line_with(s, " 8080 "), plain})
        EXPECT_LE(line.size(), 80u * 3) << "within the width (bytes of UTF-8)";
    // The detail panel: before and after NAT side by side, the WAN address and port there.
    tmux.keys("'/' 'port:7300' Enter");
    ASSERT_TRUE(tmux.wait_for("[1/1]")) << tmux.screen();
    tmux.keys("Enter");
    EXPECT_TRUE(tmux.wait_for("before snat: 192.0.2.1:")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for(std::string("after: ") + k_wan + ":" + std::to_string(wan_port) +
                              " \u2192 198.51.100.1:7300"))
        << tmux.screen();
    tmux.keys("q");
    EXPECT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
}

TEST_F(Nat, WideLiveViewShowsThePostNatSourceAndTheInternalTargetInTheRows) {
    connect_all();
    const int wan_port = port_seen_by_server();
    ASSERT_GT(wan_port, 0);
    start_tui("-n -G -T", 200);
    // The masqueraded flow: its destination with the WAN address and port it left with.
    EXPECT_TRUE(tmux.wait_for(std::string("via ") + k_wan + ":" + std::to_string(wan_port)))
        << tmux.screen();
    // The port forward: the public destination, then the internal target.
    EXPECT_TRUE(tmux.wait_for(std::string(k_wan) + "\u2192192.0.2.1:80")) << tmux.screen();
    // With the source column (s): the client, then what it became.
    tmux.keys("s");
    EXPECT_TRUE(
        tmux.wait_for(std::string("192.0.2.1\u2192") + k_wan + ":" + std::to_string(wan_port)))
        << tmux.screen();
    tmux.keys("q");
    EXPECT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
}

TEST_F(Nat, DeleteKeyAsksThenRemovesTheSelectedEntry) {
    connect_all();
    ASSERT_EQ(entries("--dport 7300").size(), 1u);
    start_tui("-n -G -T");
    tmux.keys("'/' 'port:7300' Enter");
    ASSERT_TRUE(tmux.wait_for("[1/1]")) << tmux.screen();
    tmux.keys("K");
    ASSERT_TRUE(tmux.wait_for("Delete the conntrack entry of tcp 192.0.2.1:")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("does not block the hosts")) << tmux.screen();
    tmux.keys("n");  // anything but y keeps it
    ASSERT_TRUE(tmux.wait_for("not deleted")) << tmux.screen();
    EXPECT_EQ(entries("--dport 7300").size(), 1u);
    tmux.keys("F9");
    ASSERT_TRUE(tmux.wait_for("does not block the hosts")) << tmux.screen();
    tmux.keys("y");
    EXPECT_TRUE(tmux.wait_for("deleted: tcp 192.0.2.1:")) << tmux.screen();
    EXPECT_TRUE(entries("--dport 7300").empty()) << "conntrack -L still lists it";
    EXPECT_EQ(entries("--dport 8080").size(), 1u) << "the other entries stay";
    tmux.keys("q");
    EXPECT_TRUE(tmux.wait_for("EXITED 0")) << tmux.screen();
}

TEST_F(Nat, DeleteKeyRefusesWhilePausedOnAStaleRow) {
    connect_all();
    start_tui("-n -G -T -t 0.5");
    tmux.keys("'/' 'port:7300' Enter");
    ASSERT_TRUE(tmux.wait_for("[1/1]")) << tmux.screen();
    tmux.keys("Space");
    ASSERT_TRUE(tmux.wait_for("PAUSED")) << tmux.screen();
    // The entry goes behind the paused screen's back: the row shown is stale now.
    must(net.router.exec("conntrack -D -p tcp --dport 7300 >/dev/null 2>&1"));
    std::this_thread::sleep_for(1500ms);  // a frame or two without it
    tmux.keys("K");
    EXPECT_TRUE(tmux.wait_for("paused on a stale row")) << tmux.screen();
    EXPECT_EQ(tmux.screen().find("Delete the conntrack entry"), std::string::npos) << tmux.screen();
}

TEST_F(Nat, DeleteMatchingIsADryRunUnlessYesThenDeletesExactlyTheMatches) {
    connect_all();
    ASSERT_EQ(entries("").size(), 3u);
    std::string out, err;
    const std::string run = net.router.exec(std::string(FLOWTOP_BINARY) +
                                            " -n -G --delete-matching 'nat:snat or port:7301'");
    ASSERT_EQ(sh(run + " 2>/tmp/ftnat_err" + std::to_string(getpid()), &out), 0) << out;
    sh("cat /tmp/ftnat_err" + std::to_string(getpid()), &err);
    EXPECT_NE(out.find("would delete: tcp 192.0.2.1:"), std::string::npos) << out;
    EXPECT_NE(out.find("-> [2001:db8:2::1]:7301"), std::string::npos) << out;
    EXPECT_EQ(out.find(":8080"), std::string::npos) << out;
    EXPECT_NE(err.find("2 flows match; dry run, nothing deleted"), std::string::npos) << err;
    EXPECT_EQ(entries("").size(), 3u) << "a dry run deletes nothing";

    ASSERT_EQ(sh(run + " --yes 2>/tmp/ftnat_err" + std::to_string(getpid()), &out), 0) << out;
    sh("cat /tmp/ftnat_err" + std::to_string(getpid()) + "; rm -f /tmp/ftnat_err" +
           std::to_string(getpid()),
       &err);
    EXPECT_NE(out.find("deleted: tcp 192.0.2.1:"), std::string::npos) << out;
    EXPECT_NE(err.find("2 deleted, 0 gone already, 0 failed"), std::string::npos) << err;
    EXPECT_TRUE(entries("--dport 7300").empty());
    std::string v6;
    sh(net.router.exec("conntrack -L -f ipv6 -p tcp --dport 7301 2>/dev/null"), &v6);
    EXPECT_EQ(v6.find("dport=7301"), std::string::npos) << v6;
    EXPECT_EQ(entries("--dport 8080").size(), 1u) << "only the matches go";
}

TEST_F(Nat, DeleteMatchingRejectsABadExpressionAtItsColumn) {
    std::string out;
    const int status =
        sh(net.router.exec(std::string(FLOWTOP_BINARY) + " --delete-matching 'tcp nat:masq' 2>&1"),
           &out);
    EXPECT_EQ(status, 2) << out;
    EXPECT_NE(out.find("--delete-matching: nat: takes snat, dnat, both or none (at column 9)"),
              std::string::npos)
        << out;
}

TEST_F(Nat, OffloadedFlowIsMarkedWhereTheKernelHasASoftwareFlowtable) {
    // A software flowtable on both router links; established TCP forwarded between them is
    // handed to it.
    std::string why;
    if (sh(net.router.exec(
               "nft 'table inet ftoff { flowtable ft { hook ingress priority 0; devices = { r0, "
               "r1 }; }; chain f { type filter hook forward priority 0; meta l4proto tcp flow "
               "add @ft; }; }' 2>&1"),
           &why) != 0)
        GTEST_SKIP() << "this kernel cannot make a software flowtable in a namespace: " << why;
    must(net.server.exec(
        "sh -c 'timeout 30 socat -u TCP4-LISTEN:7400,reuseaddr OPEN:/dev/null' >/dev/null 2>&1 "
        "&"));
    std::this_thread::sleep_for(500ms);
    must(net.client.exec(
        "sh -c '(for i in $(seq 40); do echo hi; sleep 0.25; done) | timeout 30 socat -u - "
        "TCP4:198.51.100.1:7400' >/dev/null 2>&1 &"));
    std::string st;
    for (int i = 0; i < 50; ++i) {
        sh(net.router.exec("conntrack -L -p tcp --dport 7400 2>/dev/null"), &st);
        if (st.find("OFFLOAD") != std::string::npos) break;
        std::this_thread::sleep_for(100ms);
    }
    if (st.find("OFFLOAD") == std::string::npos)
        GTEST_SKIP() << "the kernel accepted the flowtable but offloaded nothing: " << st;
    Flowtop ft(net.router, {"-o", "json", "-c", "1", "-n", "-G", "--filter", "port:7400"});
    auto frames = ft.all_frames();
    ASSERT_FALSE(frames.empty()) << ft.stderr_text();
    const Json flow = flow_to(frames.back(), 7400);
    ASSERT_FALSE(flow.is_null());
    EXPECT_EQ(flow["offloaded"], true) << flow.dump();
    EXPECT_NE(flow["status"].get<std::string>().find("OFFLOAD"), std::string::npos);
    EXPECT_GE(frames.back().frame["offloaded_flows"].get<int>(), 1);
    // The live view: the state column says so, the header says the counters may be stale.
    start_tui("-n -G --filter port:7400");
    EXPECT_TRUE(tmux.wait_for("OFFLOAD ")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("offloaded: counters may be stale")) << tmux.screen();
}
