// The detectors against real traffic from real tools (nmap, hping3, socat) between test
// namespaces: what flowtop prints as {"type":"alert"} lines, folded, with their evidence.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "harness.hpp"
#include "mmdb_writer.hpp"

using namespace flowtop::test;

namespace {

// A directory only root may write: --alert-exec refuses commands under world-writable ones.
class PrivateDir {
  public:
    PrivateDir() {
        std::string tmpl = "/run/ftdetect-XXXXXX";
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~PrivateDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string path;
};

// Every alert line of `frames` frames (or until the output ends), the latest version by id.
struct Alerts {
    std::vector<Json> lines;
    std::map<std::uint64_t, Json> by_id;
    std::vector<Json> of(const std::string& kind) const {
        std::vector<Json> out;
        for (const auto& [id, a] : by_id)
            if (a["kind"] == kind) out.push_back(a);
        return out;
    }
};

void collect(Flowtop& ft, int frames, Alerts& out) {
    for (int i = 0; i < frames; ++i) {
        auto f = ft.next_frame();
        if (!f) break;
        for (const auto& a : f->alerts) {
            out.lines.push_back(a);
            out.by_id[a["id"].get<std::uint64_t>()] = a;
        }
        for (const auto& line : f->alert_lines) std::cout << "flowtop printed: " << line << "\n";
    }
}

std::string kinds(const Alerts& a) {
    std::string s;
    for (const auto& [id, j] : a.by_id) s += j.dump() + "\n";
    return s;
}

class Detect : public ::testing::Test {
  protected:
    TestNet net;
    // Starts flowtop in `ns` and waits for its first frame (accounting on from here).
    std::unique_ptr<Flowtop> start(const Namespace& ns, std::vector<std::string> extra = {}) {
        std::vector<std::string> args = {"-o", "json", "-c", "60", "-t", "0.5", "-n"};
        args.insert(args.end(), extra.begin(), extra.end());
        auto ft = std::make_unique<Flowtop>(ns, args);
        auto first = ft->next_frame(10s);
        EXPECT_TRUE(first) << ft->stderr_text();
        if (first)
            for (const auto& a : first->alerts) ADD_FAILURE() << "alert at start: " << a.dump();
        return ft;
    }
};

void expect_one_scan(const Alerts& alerts, const char* scanner) {
    const auto scans = alerts.of("port_scan");
    ASSERT_EQ(scans.size(), 1u) << kinds(alerts);
    const Json& a = scans.front();
    EXPECT_EQ(a["src"], scanner);
    EXPECT_EQ(a["dsts"][0], TestNet::a4);
    EXPECT_GE(a["distinct"].get<int>(), 200) << a.dump();
    EXPECT_NE(a["message"].get<std::string>().find(std::string(scanner) + " probed "),
              std::string::npos);
    EXPECT_EQ(alerts.by_id.size(), 1u) << "nothing else: " << kinds(alerts);
}

}  // namespace

TEST_F(Detect, TcpConnectScanRaisesOneFoldedAlertNamingTheScanner) {
    auto ft = start(net.a);
    must(net.b.exec("nmap -n -Pn -sT -T5 -p 1-300 198.51.100.1 >/dev/null"));
    Alerts alerts;
    collect(*ft, 6, alerts);
    expect_one_scan(alerts, TestNet::b4);
}

TEST_F(Detect, SynScanRaisesOneFoldedAlertNamingTheScanner) {
    auto ft = start(net.a);
    must(net.b.exec("nmap -n -Pn -sS -T5 -p 1-300 198.51.100.1 >/dev/null"));
    Alerts alerts;
    collect(*ft, 6, alerts);
    expect_one_scan(alerts, TestNet::b4);
}

TEST_F(Detect, UdpScanIsSeenFromUnrepliedEntries) {
    auto ft = start(net.a);
    // Closed UDP ports answer with ICMP unreachable (rate-limited): the entries stay UNREPLIED.
    must(
        net.b.exec("nmap -n -Pn -sU -T5 --max-retries 0 --min-rate 2000 -p 1-250 "
                   "198.51.100.1 >/dev/null"));
    Alerts alerts;
    collect(*ft, 6, alerts);
    const auto scans = alerts.of("port_scan");
    ASSERT_EQ(scans.size(), 1u) << kinds(alerts);
    EXPECT_EQ(scans.front()["src"], TestNet::b4);
    EXPECT_EQ(scans.front()["proto"], "udp");
    EXPECT_GE(scans.front()["distinct"].get<int>(), 200);
}

// Issue 12: a host sweep, one port of many hosts. The 60 hosts are addresses of a's veth
// (documentation range), so the sweep is inbound where flowtop watches a, outbound in b.
TEST_F(Detect, HostSweepOfSixtyHostsOnOnePortRaisesOneFoldedAlertNamingTheSource) {
    std::string batch;
    for (int i = 100; i < 160; ++i)
        batch += "addr add 198.51.100." + std::to_string(i) + "/24 dev eth0\n";
    must("printf '" + batch + "' | ip -n " + net.a.name() + " -batch -");
    auto inbound = start(net.a);
    auto outbound = start(net.b);
    // Twice: the second sweep folds into the first one's alert.
    must(net.b.exec("nmap -n -Pn -sT -T5 -p 8080 198.51.100.100-159 >/dev/null"));
    must(net.b.exec("nmap -n -Pn -sT -T5 -p 8080 198.51.100.100-159 >/dev/null"));
    for (auto* ft : {inbound.get(), outbound.get()}) {
        Alerts alerts;
        collect(*ft, 6, alerts);
        const auto sweeps = alerts.of("host_sweep");
        ASSERT_EQ(sweeps.size(), 1u) << kinds(alerts);
        const Json& a = sweeps.front();
        EXPECT_EQ(a["src"], TestNet::b4);
        EXPECT_EQ(a["ports"][0], 8080);
        EXPECT_EQ(a["proto"], "tcp");
        EXPECT_EQ(a["distinct"].get<int>(), 60) << a.dump();
        EXPECT_GE(a["count"].get<int>(), 120) << "both sweeps, folded: " << a.dump();
        EXPECT_NE(
            a["message"].get<std::string>().find("198.51.100.2 probed tcp port 8080 of 60 hosts"),
            std::string::npos)
            << a.dump();
        EXPECT_TRUE(alerts.of("port_scan").empty()) << kinds(alerts);
        EXPECT_TRUE(alerts.of("syn_flood").empty()) << kinds(alerts);
        EXPECT_EQ(alerts.by_id.size(), 1u) << "nothing else: " << kinds(alerts);
    }
}

TEST_F(Detect, NormalTrafficBetweenTheSameHostsRaisesNone) {
    auto ft = start(net.a);
    must(net.a.exec("sh -c 'socat UDP-RECVFROM:5353,fork EXEC:/bin/cat >/dev/null 2>&1 &'"));
    for (int i = 0; i < 20; ++i) TcpTransfer t(net, i % 2, 6100 + i % 3, 20'000, 200'000);
    for (int i = 0; i < 10; ++i)
        sh(net.b.exec("sh -c 'echo q | socat -T1 - UDP:198.51.100.1:5353 >/dev/null'"));
    must(net.b.exec("ping -c 3 -i 0.2 198.51.100.1 >/dev/null"));
    Alerts alerts;
    collect(*ft, 6, alerts);
    EXPECT_TRUE(alerts.by_id.empty()) << kinds(alerts);
}

TEST_F(Detect, FiftyMegabyteUploadRaisesExfiltrationAndADownloadDoesNot) {
    auto ft = start(net.b);  // b is the local host: its uploads leave it
    { TcpTransfer down(net, false, 7001, 1000, 50'000'000); }
    Alerts alerts;
    collect(*ft, 4, alerts);
    EXPECT_TRUE(alerts.of("exfiltration").empty()) << kinds(alerts);
    { TcpTransfer up(net, false, 7002, 50'000'000, 1000); }
    collect(*ft, 4, alerts);
    const auto ex = alerts.of("exfiltration");
    ASSERT_EQ(ex.size(), 1u) << kinds(alerts);
    EXPECT_EQ(ex.front()["src"], TestNet::b4);
    EXPECT_EQ(ex.front()["dsts"][0], TestNet::a4);
    EXPECT_GE(ex.front()["bytes"].get<long long>(), 32ll << 20);
    EXPECT_EQ(ex.front()["ports"][0], 7002);
}

TEST_F(Detect, FirstContactWithANewCountryAlertsOnceAndAnAllowedOneNever) {
    PrivateDir dir;
    MmdbWriter city("GeoLite2-City");
    auto place = [](const char* cc) {
        return MmdbValue::map({{"country", MmdbValue::map({{"iso_code", MmdbValue::str(cc)}})}});
    };
    city.insert("198.51.100.0/24", place("NL"));
    city.insert("192.0.2.0/24", place("JP"));
    const std::string db = city.write(dir.path + "/GeoLite2-City.mmdb");
    must("ip -n " + net.b.name() + " addr add 192.0.2.7/24 dev eth0");
    must("ip -n " + net.a.name() + " route add 192.0.2.0/24 dev eth0");
    auto udp = [&](const char* to) {
        must(net.a.exec(std::string("sh -c 'echo x | socat -u - UDP:") + to + ":9999'"));
    };
    {
        auto ft = start(net.a, {"--geoip-db", db, "--detect", "country.learn=2s"});
        udp("198.51.100.2");  // NL, while learning
        Alerts alerts;
        collect(*ft, 6, alerts);  // learning is over
        udp("192.0.2.7");
        udp("192.0.2.7");
        udp("198.51.100.2");
        collect(*ft, 4, alerts);
        const auto cc = alerts.of("new_country");
        ASSERT_EQ(cc.size(), 1u) << kinds(alerts);
        EXPECT_EQ(cc.front()["country"], "JP");
        EXPECT_EQ(cc.front()["dsts"][0], "192.0.2.7");
        EXPECT_EQ(cc.front()["src"], TestNet::a4);
    }
    {
        auto ft = start(net.a, {"--geoip-db", db, "--allow-country", "nl,JP"});
        udp("192.0.2.7");
        udp("198.51.100.2");
        Alerts alerts;
        collect(*ft, 4, alerts);
        EXPECT_TRUE(alerts.of("new_country").empty()) << kinds(alerts);
    }
}

TEST_F(Detect, NewListenerAfterLearningRaisesNewServiceWithItsProcess) {
    auto ft = start(net.a, {"--detect", "service.learn=2s"});
    { TcpTransfer learned(net, false, 7101, 1000, 1000); }  // known from learning
    Alerts alerts;
    collect(*ft, 5, alerts);
    must(
        net.a.exec("sh -c 'socat TCP-LISTEN:7102,fork,reuseaddr SYSTEM:\"echo hi\" "
                   ">/dev/null 2>&1 &'"));
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < 2; ++i) {
        must(net.b.exec("sh -c 'socat -T2 - TCP:198.51.100.1:7102 </dev/null >/dev/null'"));
        TcpTransfer again(net, false, 7101, 1000, 1000);
    }
    collect(*ft, 6, alerts);
    const auto svc = alerts.of("new_service");
    ASSERT_EQ(svc.size(), 1u) << kinds(alerts);
    EXPECT_EQ(svc.front()["ports"][0], 7102);
    EXPECT_EQ(svc.front()["process"], "socat");
    EXPECT_EQ(svc.front()["src"], TestNet::b4);
}

TEST_F(Detect, FiftySourcesToOneLocalPortRaiseTheFloodAlert) {
    std::string batch;
    for (int i = 100; i < 160; ++i)
        batch += "addr add 198.51.100." + std::to_string(i) + "/24 dev eth0\n";
    must("printf '" + batch + "' | ip -n " + net.b.name() + " -batch -");
    must(net.a.exec("sh -c 'socat TCP-LISTEN:8080,fork,reuseaddr SYSTEM:true >/dev/null 2>&1 &'"));
    auto ft = start(net.a, {"--detect", "flood.sources=50"});
    std::string cmd = "sh -c '";
    for (int i = 100; i < 160; ++i)
        cmd += "hping3 -q -S -p 8080 -c 2 -i u200000 -a 198.51.100." + std::to_string(i) +
               " 198.51.100.1 >/dev/null 2>&1 & ";
    cmd += "wait'";
    sh(net.b.exec(cmd));
    Alerts alerts;
    collect(*ft, 6, alerts);
    const auto flood = alerts.of("syn_flood");
    ASSERT_EQ(flood.size(), 1u) << kinds(alerts);
    EXPECT_GE(flood.front()["distinct"].get<int>(), 50);
    EXPECT_EQ(flood.front()["ports"][0], 8080);
    EXPECT_EQ(flood.front()["dsts"][0], TestNet::a4);
    EXPECT_TRUE(alerts.of("port_scan").empty()) << kinds(alerts);
}

TEST_F(Detect, OneLocalSourceWithManyFlowsToOneServiceRaisesFanOut) {
    auto ft = start(net.b, {"--detect", "fanout.flows=200"});
    must(net.b.exec("hping3 -q -S -p 9090 -c 400 -i u2000 198.51.100.1 >/dev/null 2>&1 || true"));
    Alerts alerts;
    collect(*ft, 5, alerts);
    const auto fan = alerts.of("fan_out");
    ASSERT_EQ(fan.size(), 1u) << kinds(alerts);
    EXPECT_EQ(fan.front()["src"], TestNet::b4);
    EXPECT_EQ(fan.front()["dsts"][0], TestNet::a4);
    EXPECT_GE(fan.front()["distinct"].get<int>(), 200);
}

TEST_F(Detect, LongLivedFlowAndSshdOnAnOddPortRaiseLowSeverityAlerts) {
    PrivateDir dir;
    // A program named sshd (socat under that name) accepting on 2222.
    must("cp \"$(command -v socat)\" " + dir.path + "/sshd");
    must(net.a.exec("sh -c '" + dir.path +
                    "/sshd TCP-LISTEN:2222,fork,reuseaddr SYSTEM:\"sleep 4\" >/dev/null 2>&1 &'"));
    auto ft = start(net.a, {"--detect", "long.after=2s"});
    TcpTransfer held(net, false, 7201, 1000, 1000);
    must(net.b.exec("sh -c 'socat -T5 - TCP:198.51.100.1:2222 </dev/null >/dev/null &'"));
    Alerts alerts;
    collect(*ft, 10, alerts);
    const auto odd = alerts.of("odd_port");
    ASSERT_EQ(odd.size(), 1u) << kinds(alerts);
    EXPECT_EQ(odd.front()["process"], "sshd");
    EXPECT_EQ(odd.front()["ports"][0], 2222);
    EXPECT_EQ(odd.front()["severity"], "low");
    bool held_alert = false;
    for (const auto& a : alerts.of("long_lived"))
        held_alert |= a["ports"][0] == 7201 && a["severity"] == "low";
    EXPECT_TRUE(held_alert) << kinds(alerts);
}

TEST_F(Detect, AlertExecGetsJsonPerAlertAndASlowHookDoesNotDelayFrames) {
    PrivateDir dir;
    const std::string hook = dir.path + "/hook";
    {
        std::ofstream f(hook);
        f << "#!/bin/sh\ncat >> " << dir.path << "/got.jsonl\nsleep 3\n";
    }
    chmod(hook.c_str(), 0755);
    auto ft = start(net.a, {"--alert-exec", hook, "--detect", "scan.ports=50"});
    must(net.b.exec("nmap -n -Pn -sT -T5 -p 1-100 198.51.100.1 >/dev/null"));
    must("ip -n " + net.b.name() + " addr add 198.51.100.3/24 dev eth0");
    must(
        net.b.exec("nmap -n -Pn -sS -T5 -S 198.51.100.3 -e eth0 -p 1-100 198.51.100.1 "
                   ">/dev/null 2>&1"));
    Alerts alerts;
    // While the hook sleeps its 3 s per alert, frames keep their 0.5 s pace.
    double longest = 0;
    for (int i = 0; i < 14; ++i) {
        auto f = ft->next_frame();
        ASSERT_TRUE(f);
        if (i > 0) longest = std::max(longest, f->frame["interval_s"].get<double>());
        for (const auto& a : f->alerts) alerts.by_id[a["id"].get<std::uint64_t>()] = a;
    }
    EXPECT_LT(longest, 1.0);
    ASSERT_EQ(alerts.by_id.size(), 2u) << kinds(alerts);
    std::this_thread::sleep_for(4s);  // the second run's start (1 s spacing, 3 s runs)
    std::ifstream got(dir.path + "/got.jsonl");
    std::set<std::uint64_t> ids;
    for (std::string line; std::getline(got, line);) {
        auto j = Json::parse(line, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << line;
        EXPECT_EQ(j["type"], "alert");
        EXPECT_EQ(j["state"], "new");
        ids.insert(j["id"].get<std::uint64_t>());
    }
    EXPECT_EQ(ids.size(), 2u);
}

TEST_F(Detect, AlertExecRefusesACommandInAWorldWritablePlace) {
    const std::string path = "/tmp/ftdetect-hook-" + std::to_string(getpid());
    must("printf '#!/bin/sh\\ntrue\\n' > " + path + " && chmod 755 " + path);
    Flowtop ft(net.a, {"-o", "json", "-c", "1", "--alert-exec", path});
    const int status = ft.wait();
    std::remove(path.c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
    EXPECT_NE(ft.stderr_text().find("world-writable"), std::string::npos) << ft.stderr_text();
}

namespace {

class DetectTui : public ::testing::Test {
  protected:
    TestNet net;
    TmuxSession tmux{"ftdetui"};
};

}  // namespace

TEST_F(DetectTui, LiveViewShowsTheBadgeTheAlertsTabAndTheEvidenceFlows) {
    const std::string cmd = net.a.exec(std::string(FLOWTOP_BINARY) + " -n -t 0.5") + "; sleep 30";
    tmux.start(cmd, 120, 40);
    ASSERT_TRUE(tmux.wait_for("DESTINATION")) << tmux.screen();
    EXPECT_EQ(tmux.screen().find("ALERTS "), std::string::npos) << tmux.screen();
    must(net.b.exec("nmap -n -Pn -sT -T5 -p 1-300 198.51.100.1 >/dev/null"));
    ASSERT_TRUE(tmux.wait_for("ALERTS 1")) << tmux.screen();
    tmux.keys("'!'");
    ASSERT_TRUE(tmux.wait_for("[Alerts]")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("198.51.100.2 probed 300 ports of 198.51.100.1")) << tmux.screen();
    EXPECT_NE(tmux.screen().find("port_scan"), std::string::npos) << tmux.screen();
    tmux.keys("Enter");  // the alert's flows
    ASSERT_TRUE(tmux.wait_for("filter: alert:1")) << tmux.screen();
    EXPECT_TRUE(tmux.wait_for("!tcp")) << tmux.screen();
    tmux.keys("'!'");
    ASSERT_TRUE(tmux.wait_for("[Alerts]")) << tmux.screen();
    tmux.keys("a");  // acknowledged: the badge goes
    auto end = std::chrono::steady_clock::now() + 4s;
    while (tmux.screen().find("ALERTS 1") != std::string::npos &&
           std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(tmux.screen().find("ALERTS 1"), std::string::npos) << tmux.screen();
    tmux.keys("q");
}
