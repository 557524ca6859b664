// The exporters against the real collectors: Debian's prometheus scraping flowtop and answering
// PromQL, nfcapd receiving its IPFIX export and nfdump reading it back, the JSON flow log with
// rotation, SIGHUP and a full disk, and --daemon as a service runs it.
//
// flowtop runs in namespace a and watches namespace b (--netns): its exporter sockets stay in
// a, where prometheus and nfcapd run, so their own traffic never enters the table under test.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "flowtop/ui/flow_fields.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"

namespace flowtop::test {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Free ports in a namespace: bound to port 0 together, so two calls never give the same one.
std::vector<int> free_ports(const Namespace& ns, int type, int count) {
    std::vector<int> fds, ports;
    for (int i = 0; i < count; ++i) {
        int fd = ns.socket(AF_INET, type);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        socklen_t len = sizeof addr;
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        ports.push_back(ntohs(addr.sin_port));
        fds.push_back(fd);
    }
    for (int fd : fds) close(fd);
    return ports;
}

// A program started through /bin/sh (for redirections); the shell execs it, so pid() is the
// program's own. Stopped with SIGTERM (then SIGKILL) at the latest on destruction.
class Background {
  public:
    explicit Background(const std::string& command) {
        pid_ = fork();
        if (pid_ == 0) {
            execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), nullptr);
            _exit(127);
        }
    }
    ~Background() { stop(); }
    pid_t pid() const { return pid_; }
    bool running() {
        if (status_ != -1) return false;
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
            status_ = st;
            return false;
        }
        return true;
    }
    // Sends `signo` and waits (bounded); returns the wait status.
    int stop(int signo = SIGTERM, std::chrono::milliseconds timeout = 10s) {
        if (status_ != -1 || pid_ <= 0) return status_;
        kill(pid_, signo);
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (!running()) return status_;
            std::this_thread::sleep_for(50ms);
        }
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
        return status_;
    }

  private:
    pid_t pid_ = -1;
    int status_ = -1;
};

std::string flowtop_cmd(const Namespace& ns, const std::string& args) {
    return ns.exec(std::string(FLOWTOP_BINARY) + " " + args);
}

std::string metrics(const Namespace& ns, int port) {
    std::string out;
    sh(ns.exec("curl -s --max-time 3 http://127.0.0.1:" + std::to_string(port) + "/metrics"), &out);
    return out;
}

std::string wait_metrics(const Namespace& ns, int port) {
    for (int i = 0; i < 100; ++i) {
        auto m = metrics(ns, port);
        if (m.find("flowtop_frames_total") != std::string::npos) return m;
        std::this_thread::sleep_for(100ms);
    }
    return {};
}

// A sample's value from an exposition text, or -1.
double metric_value(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return -1;
}

struct CtFlow {
    std::uint64_t orig_packets = 0, orig_bytes = 0, reply_packets = 0, reply_bytes = 0;
    int sport = 0;
    bool found = false;
};

// What `conntrack -L` says of the one flow matching `filter` (conntrack options).
CtFlow conntrack_flow(const Namespace& ns, const std::string& filter) {
    std::string out;
    sh(ns.exec("conntrack -L " + filter + " 2>/dev/null"), &out);
    CtFlow f;
    std::smatch m;
    static const std::regex counts(
        R"(sport=(\d+) .*?packets=(\d+) bytes=(\d+) .*?packets=(\d+) bytes=(\d+))");
    if (std::regex_search(out, m, counts)) {
        f.found = true;
        f.sport = std::stoi(m[1]);
        f.orig_packets = std::stoull(m[2]);
        f.orig_bytes = std::stoull(m[3]);
        f.reply_packets = std::stoull(m[4]);
        f.reply_bytes = std::stoull(m[5]);
    }
    return f;
}

double promql(const Namespace& ns, int port, const std::string& query) {
    std::string out;
    sh(ns.exec("curl -s --max-time 3 -G http://127.0.0.1:" + std::to_string(port) +
               "/api/v1/query --data-urlencode 'query=" + query + "'"),
       &out);
    try {
        auto j = Json::parse(out);
        const auto& result = j["data"]["result"];
        if (result.empty()) return -1;
        return std::stod(result[0]["value"][1].get<std::string>());
    } catch (...) {
        return -1;
    }
}

using Clock = std::chrono::system_clock;

double seconds_of(Clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// nfdump's "2026-12-02T16:26:14.074" (local time) as seconds since the epoch.
double nfdump_time(const std::string& text) {
    tm t{};
    const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
    if (!rest) return 0;
    t.tm_isdst = -1;
    double s = static_cast<double>(mktime(&t));
    if (*rest == '.') s += std::stod(std::string("0") + rest);
    return s;
}

class Export : public ::testing::Test {
  protected:
    TestNet net;
    TempDir dir;
};

TEST_F(Export, PrometheusQueryReturnsTheBytesOfATransferInEachDirection) {
    const auto ports = free_ports(net.a, SOCK_STREAM, 2);
    const int port = ports[0], prom_port = ports[1];
    // IPFIX of the same run too, so one flow can be shown in PromQL and in nfdump.
    const int ipfix_port = free_ports(net.a, SOCK_DGRAM, 1)[0];
    must("mkdir " + dir.path + "/cap");
    Background nfcapd(net.a.exec("nfcapd -w " + dir.path + "/cap -b 127.0.0.1 -p " +
                                 std::to_string(ipfix_port) + " -t 60 > /dev/null 2>&1"));
    Flowtop ft(net.a, {"--daemon", "-n", "-G", "-t", "0.5", "--netns", net.b.name(), "--prometheus",
                       "127.0.0.1:" + std::to_string(port), "--ipfix",
                       "127.0.0.1:" + std::to_string(ipfix_port)});
    ASSERT_FALSE(wait_metrics(net.a, port).empty()) << "no /metrics on port " << port;
    {
        std::ofstream conf(dir.path + "/prometheus.yml");
        conf << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
             << "scrape_configs:\n  - job_name: flowtop\n    static_configs:\n"
             << "      - targets: ['127.0.0.1:" << port << "']\n";
    }
    Background prometheus(net.a.exec(
        "prometheus --config.file=" + dir.path + "/prometheus.yml --storage.tsdb.path=" + dir.path +
        "/data --web.listen-address=127.0.0.1:" + std::to_string(prom_port) +
        " --log.level=warn > " + dir.path + "/prometheus.log 2>&1"));
    {
        TcpTransfer t(net, false, 5001, 300000, 120000);
        t.close();
    }
    std::this_thread::sleep_for(1500ms);
    const CtFlow ct = conntrack_flow(net.b, "-p tcp --dport 5001");
    ASSERT_TRUE(ct.found);
    EXPECT_GE(ct.orig_bytes, 300000u);

    // One flow in the table: the totals must be its counters, within one packet.
    double orig = -1, reply = -1, reply_tcp = -1;
    for (int i = 0; i < 60; ++i) {
        orig = promql(net.a, prom_port, "flowtop_bytes_total{job=\"flowtop\",direction=\"orig\"}");
        reply = promql(net.a, prom_port, "flowtop_bytes_total{direction=\"reply\"}");
        reply_tcp = promql(net.a, prom_port,
                           "sum(flowtop_flow_bytes_total{direction=\"reply\",protocol=\"tcp\"})");
        if (std::fabs(orig - static_cast<double>(ct.orig_bytes)) <= 1500 &&
            std::fabs(reply_tcp - static_cast<double>(ct.reply_bytes)) <= 1500)
            break;
        std::this_thread::sleep_for(500ms);
    }
    std::cout << "PromQL flowtop_bytes_total{direction=\"orig\"} = " << std::fixed << orig
              << ", {direction=\"reply\"} = " << reply
              << "; conntrack -L: orig bytes=" << ct.orig_bytes << " reply bytes=" << ct.reply_bytes
              << "\n";
    EXPECT_NEAR(orig, static_cast<double>(ct.orig_bytes), 1500);
    EXPECT_NEAR(reply, static_cast<double>(ct.reply_bytes), 1500);
    EXPECT_NEAR(reply_tcp, static_cast<double>(ct.reply_bytes), 1500);
    const double packets = promql(net.a, prom_port, "flowtop_packets_total{direction=\"orig\"}");
    EXPECT_NEAR(packets, static_cast<double>(ct.orig_packets), 1);

    std::string check;
    const int rc = sh(net.a.exec("sh -c 'curl -s http://127.0.0.1:" + std::to_string(port) +
                                 "/metrics | promtool check metrics' 2>&1"),
                      &check);
    EXPECT_EQ(rc, 0) << check;
    std::string not_found;
    sh(net.a.exec("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                  std::to_string(port) + "/other"),
       &not_found);
    EXPECT_EQ(not_found, "404");
    prometheus.stop();
    ft.signal(SIGTERM);
    ft.wait();
    nfcapd.stop();
    std::string line;
    sh("nfdump -R " + dir.path +
           "/cap -q -o 'fmt:%ts %td %pr %sap -> %dap %ipkt %ibyt %opkt %obyt' 'dst port 5001'",
       &line);
    std::cout << "nfdump, same flow: " << line;
    EXPECT_NE(line.find(" " + std::to_string(ct.orig_bytes) + " "), std::string::npos) << line;
}

TEST_F(Export, PrometheusLabelsStayBoundedWithTenThousandFlowsToTenThousandAddresses) {
    const int port = free_ports(net.a, SOCK_STREAM, 1)[0];
    must("ip -n " + net.b.name() + " -6 route add 2001:db8:1::/48 via 2001:db8::1");
    Flowtop ft(net.a, {"--daemon", "-n", "-G", "-t", "0.5", "--netns", net.b.name(), "--prometheus",
                       "127.0.0.1:" + std::to_string(port)});
    ASSERT_FALSE(wait_metrics(net.a, port).empty());
    // One UDP datagram to each of 10k addresses: 10k conntrack entries, 10k remote addresses.
    must(net.b.exec(
        "python3 -c \"import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        "for i in range(10000): s.sendto(b'x',('2001:db8:1::%x:%x'%(i>>8,i&255),9))\""));
    std::string text;
    double flows = 0;
    for (int i = 0; i < 60; ++i) {
        text = metrics(net.a, port);
        flows =
            metric_value(text, "flowtop_flows{family=\"ipv6\",protocol=\"udp\",state=\"none\"}");
        if (flows >= 9990) break;
        std::this_thread::sleep_for(250ms);
    }
    // A datagram or two may race the first dump; the labels are what this test is about.
    EXPECT_GE(flows, 9900);
    std::size_t lines = 0, series = 0;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        ++lines;
        if (line.rfind("flowtop_flow_bytes_total{", 0) == 0) ++series;
        EXPECT_EQ(line.find("2001:db8"), std::string::npos) << "an address in a label: " << line;
    }
    EXPECT_GE(series, 2u);
    EXPECT_LE(series, 2u * 2000u);
    EXPECT_LT(lines, 200u) << "labels must not grow with flows or addresses";
    ft.signal(SIGTERM);
    ft.wait();
}

struct NfdumpFlow {
    std::uint64_t in_packets = 0, in_bytes = 0, out_packets = 0, out_bytes = 0;
    double first = 1e18, last = 0;
    int records = 0;
    Json sample;
};

TEST_F(Export, IpfixRecordsInNfdumpEqualConntrackBothWaysWithNatAndInterimRecords) {
    const int port = free_ports(net.a, SOCK_DGRAM, 1)[0];
    // NAT in b: 203.0.113.10:8080 is 198.51.100.1:5003, and b leaves as 198.51.100.3.
    must("ip -n " + net.b.name() + " addr add 198.51.100.3/24 dev eth0");
    must("ip -n " + net.b.name() + " route add 203.0.113.0/24 dev eth0");
    must(net.b.exec(
        "nft -f - <<'EOF'\n"
        "table ip ftnat {\n"
        "  chain out { type nat hook output priority -100; ip daddr 203.0.113.10 tcp dport 8080 "
        "dnat to 198.51.100.1:5003; }\n"
        "  chain post { type nat hook postrouting priority 100; ip daddr 198.51.100.1 tcp dport "
        "5003 snat to 198.51.100.3; }\n"
        "}\nEOF"));
    must("mkdir " + dir.path + "/cap");
    Background nfcapd(net.a.exec("nfcapd -w " + dir.path + "/cap -b 127.0.0.1 -p " +
                                 std::to_string(port) + " -t 60 > " + dir.path +
                                 "/nfcapd.log 2>&1"));
    std::this_thread::sleep_for(500ms);
    Flowtop ft(net.a, {"--daemon", "-n", "-G", "-t", "0.5", "--netns", net.b.name(), "--ipfix",
                       "127.0.0.1:" + std::to_string(port), "--ipfix-active-timeout", "2"});
    std::this_thread::sleep_for(1500ms);

    const auto t0 = Clock::now();
    {
        TcpTransfer t4(net, false, 5001, 200000, 50000);
        t4.close();
        TcpTransfer t6(net, true, 5002, 100000, 30000);
        t6.close();
    }
    Background server(net.a.exec(
        "python3 -c \"import socket\nl=socket.socket()\nl.setsockopt(socket.SOL_SOCKET,"
        "socket.SO_REUSEADDR,1)\nl.bind(('198.51.100.1',5003))\nl.listen()\nc,_=l.accept()\n"
        "while c.recv(65536): pass\nc.sendall(b'y'*20000)\nc.close()\""));
    std::this_thread::sleep_for(300ms);
    must(
        net.b.exec("python3 -c \"import socket\nc=socket.create_connection(('203.0.113.10',8080))\n"
                   "c.sendall(b'x'*40000)\nc.shutdown(socket.SHUT_WR)\nwhile c.recv(65536): pass\n"
                   "c.close()\""));
    int lived_port = 0;
    {
        TcpTransfer lived(net, false, 5004, 10000, 10000);
        lived_port = lived.client_port();
        std::this_thread::sleep_for(6s);  // three active timeouts
        lived.close();
    }
    const auto t1 = Clock::now();
    std::this_thread::sleep_for(3500ms);  // the end's grace period and a tick
    const CtFlow ct4 = conntrack_flow(net.b, "-f ipv4 -p tcp --dport 5001");
    const CtFlow ct6 = conntrack_flow(net.b, "-f ipv6 -p tcp --dport 5002");
    const CtFlow ctnat = conntrack_flow(net.b, "-p tcp --dport 8080");
    const CtFlow ctlived = conntrack_flow(net.b, "-p tcp --dport 5004");
    ASSERT_TRUE(ct4.found && ct6.found && ctnat.found && ctlived.found);
    ft.signal(SIGTERM);
    ft.wait();
    nfcapd.stop();  // writes its file on the way out

    std::string out;
    sh("nfdump -R " + dir.path + "/cap -o json 2>&1", &out);
    Json records;
    try {
        records = Json::parse(out);
    } catch (...) {
        FAIL() << "nfdump output is not JSON:\n"
               << out << "\n"
               << read_file(dir.path + "/nfcapd.log");
    }
    std::map<int, NfdumpFlow> by_dport;
    std::map<int, NfdumpFlow> by_sport;
    for (const auto& r : records) {
        if (!r.contains("dst_port")) continue;
        for (auto* m : {&by_dport[r["dst_port"].get<int>()], &by_sport[r["src_port"].get<int>()]}) {
            m->in_packets += r["in_packets"].get<std::uint64_t>();
            m->in_bytes += r["in_bytes"].get<std::uint64_t>();
            m->out_packets += r.value("out_packets", std::uint64_t{0});
            m->out_bytes += r.value("out_bytes", std::uint64_t{0});
            m->first = std::min(m->first, nfdump_time(r["first"]));
            m->last = std::max(m->last, nfdump_time(r["last"]));
            ++m->records;
            m->sample = r;
        }
    }
    const auto same = [&](const CtFlow& ct, const NfdumpFlow& nf, const char* what) {
        EXPECT_EQ(nf.in_packets, ct.orig_packets) << what;
        EXPECT_EQ(nf.in_bytes, ct.orig_bytes) << what;
        EXPECT_EQ(nf.out_packets, ct.reply_packets) << what;
        EXPECT_EQ(nf.out_bytes, ct.reply_bytes) << what;
        EXPECT_GE(nf.first, seconds_of(t0) - 1) << what;
        EXPECT_LE(nf.last, seconds_of(t1) + 1) << what;
        EXPECT_LE(nf.first, nf.last) << what;
    };
    same(ct4, by_dport[5001], "IPv4 transfer");
    EXPECT_EQ(by_dport[5001].records, 1);
    EXPECT_EQ(by_dport[5001].sample["src4_addr"], TestNet::b4);
    EXPECT_EQ(by_dport[5001].sample["dst4_addr"], TestNet::a4);
    same(ct6, by_dport[5002], "IPv6 transfer");
    EXPECT_EQ(by_dport[5002].sample["src6_addr"], TestNet::b6);
    same(ctnat, by_dport[8080], "NAT flow");
    const Json& nat = by_dport[8080].sample;
    EXPECT_EQ(nat["dst4_addr"], "203.0.113.10");
    EXPECT_EQ(nat.value("src4_xlt_ip", ""), "198.51.100.3");
    EXPECT_EQ(nat.value("dst4_xlt_ip", ""), "198.51.100.1");
    EXPECT_EQ(nat.value("dst_xlt_port", ""), "5003");
    // The long-lived flow: interim records while open, and their sums are its counters.
    same(ctlived, by_sport[lived_port], "long-lived flow");
    EXPECT_GE(by_sport[lived_port].records, 2);
    std::cout << "nfdump line of the IPv4 transfer: ";
    sh("nfdump -R " + dir.path +
           "/cap -q -o 'fmt:%ts %td %pr %sap -> %dap %ipkt %ibyt %opkt %obyt' "
           "'dst port 5001'",
       &out);
    std::cout << out << "conntrack -L: orig packets=" << ct4.orig_packets
              << " bytes=" << ct4.orig_bytes << " reply packets=" << ct4.reply_packets
              << " bytes=" << ct4.reply_bytes << "\n";
}

std::vector<Json> log_lines(const std::string& path) {
    std::vector<Json> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        try {
            out.push_back(Json::parse(line));
        } catch (...) {
            ADD_FAILURE() << "not a JSON line in " << path << ": " << line;
        }
    }
    return out;
}

TEST_F(Export, FlowLogHasEachEndedFlowOnceRotatesAtItsSizeAndReopensOnSighup) {
    const std::string log = dir.path + "/flows.log";
    Flowtop ft(net.a, {"--daemon", "-n", "-G", "-t", "0.5", "--netns", net.b.name(), "--log", log,
                       "--log-rotate", "2k,30"});
    std::this_thread::sleep_for(1500ms);
    std::set<int> before, after;
    for (int i = 0; i < 10; ++i) {
        TcpTransfer t(net, false, 6000 + i, 2000, 1000);
        before.insert(t.client_port());
        t.close();
    }
    std::this_thread::sleep_for(3500ms);
    must("mv " + log + " " + dir.path + "/moved.log");
    ft.signal(SIGHUP);
    std::this_thread::sleep_for(1000ms);
    for (int i = 0; i < 4; ++i) {
        TcpTransfer t(net, false, 6100 + i, 2000, 1000);
        after.insert(t.client_port());
        t.close();
    }
    std::this_thread::sleep_for(3500ms);
    const CtFlow ct = conntrack_flow(net.b, "-p tcp --dport 6100");
    ft.signal(SIGTERM);
    EXPECT_NE(ft.wait(), -1);
    const auto err = ft.stderr_text();
    EXPECT_NE(err.find("SIGHUP"), std::string::npos) << err;

    std::map<int, int> seen;  // client port -> lines
    std::vector<std::string> files = {log, dir.path + "/moved.log"};
    int rotated = 0;
    for (int i = 1; i <= 30; ++i) {
        const std::string f = log + "." + std::to_string(i);
        struct stat st {};
        if (stat(f.c_str(), &st) != 0) continue;
        ++rotated;
        EXPECT_LE(st.st_size, 2048) << f;
        files.push_back(f);
    }
    EXPECT_GE(rotated, 2) << "14 lines of 600 bytes or more rotate at 2k";
    const auto& keys = ui::flow_field_keys();
    for (const auto& f : files) {
        for (const auto& line : log_lines(f)) {
            for (const char* key : keys) EXPECT_TRUE(line.contains(key)) << key;
            EXPECT_TRUE(line.contains("end"));
            EXPECT_EQ(line["closed"], true);
            const int sport = line["sport"].get<int>();
            ++seen[sport];
            if (f == dir.path + "/moved.log") {
                EXPECT_FALSE(after.contains(sport));
            }
            if (sport == ct.sport) {
                EXPECT_EQ(line["orig_bytes"], ct.orig_bytes);
                EXPECT_EQ(line["reply_bytes"], ct.reply_bytes);
                EXPECT_EQ(line["reply_packets"], ct.reply_packets);
            }
        }
    }
    for (int p : before) EXPECT_EQ(seen[p], 1) << "flow from port " << p;
    for (int p : after) EXPECT_EQ(seen[p], 1) << "flow from port " << p;
    EXPECT_EQ(seen.size(), before.size() + after.size());
    EXPECT_FALSE(log_lines(log).empty()) << "the file reopened after SIGHUP";
}

TEST_F(Export, FlowLogOnAFullDiskIsReportedAndCollectionGoesOn) {
    const int port = free_ports(net.a, SOCK_STREAM, 1)[0];
    const std::string disk = dir.path + "/disk";
    must("mkdir " + disk);
    // A 64 kB tmpfs in flowtop's own mount namespace: gone with it, even if the test fails.
    Background ft("unshare -m --propagation private sh -c 'mount -t tmpfs -o size=64k tmpfs " +
                  disk + " && exec " +
                  flowtop_cmd(net.a, "--daemon -n -G -t 0.5 --netns " + net.b.name() +
                                         " --prometheus 127.0.0.1:" + std::to_string(port) +
                                         " --log " + disk + "/flows.log") +
                  "' 2> " + dir.path + "/err");
    ASSERT_FALSE(wait_metrics(net.a, port).empty()) << read_file(dir.path + "/err");
    const std::string inside = "/proc/" + std::to_string(ft.pid()) + "/root" + disk;
    sh("dd if=/dev/zero of=" + inside + "/filler bs=4k 2>/dev/null");
    for (int i = 0; i < 3; ++i) {
        TcpTransfer t(net, false, 6200 + i, 2000, 1000);
        t.close();
    }
    std::string err;
    for (int i = 0; i < 50 && err.find("No space left") == std::string::npos; ++i) {
        std::this_thread::sleep_for(200ms);
        err = read_file(dir.path + "/err");
    }
    EXPECT_NE(err.find("No space left on device"), std::string::npos) << err;
    EXPECT_NE(err.find("collection goes on"), std::string::npos) << err;
    // Collection goes on: frames keep coming and the lost lines are counted.
    const double frames = metric_value(metrics(net.a, port), "flowtop_frames_total");
    std::this_thread::sleep_for(1500ms);
    const auto text = metrics(net.a, port);
    EXPECT_GT(metric_value(text, "flowtop_frames_total"), frames);
    EXPECT_GE(metric_value(text, "flowtop_log_dropped_total"), 1);
    // Room again: the log writes again and says so.
    sh("rm -f " + inside + "/filler");
    int again_port = 0;
    {
        TcpTransfer t(net, false, 6210, 2000, 1000);
        again_port = t.client_port();
        t.close();
    }
    bool written = false;
    for (int i = 0; i < 50 && !written; ++i) {
        std::this_thread::sleep_for(200ms);
        for (const auto& line : log_lines(inside + "/flows.log"))
            if (line["sport"] == again_port) written = true;
    }
    EXPECT_TRUE(written);
    EXPECT_NE(read_file(dir.path + "/err").find("writing again"), std::string::npos);
    EXPECT_TRUE(ft.running());
    ft.stop();
}

TEST_F(Export, DaemonRunsWithStdoutClosedSurvivesSighupAndRestoresSysctlsOnSigterm) {
    net.b.set_sysctl("net.netfilter.nf_conntrack_acct", "0");
    net.b.set_sysctl("net.netfilter.nf_conntrack_timestamp", "0");
    Background ft(flowtop_cmd(net.a, "--daemon -n -G --netns " + net.b.name()) + " >&- 2> " +
                  dir.path + "/err");
    bool on = false;
    for (int i = 0; i < 100 && !on; ++i) {
        std::this_thread::sleep_for(100ms);
        on = net.b.sysctl("net.netfilter.nf_conntrack_acct") == "1" &&
             net.b.sysctl("net.netfilter.nf_conntrack_timestamp") == "1";
    }
    EXPECT_TRUE(on);
    std::this_thread::sleep_for(500ms);
    kill(ft.pid(), SIGHUP);
    std::this_thread::sleep_for(700ms);
    EXPECT_TRUE(ft.running()) << "SIGHUP must not stop a daemon";
    const int status = ft.stop(SIGTERM);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
    EXPECT_EQ(net.b.sysctl("net.netfilter.nf_conntrack_acct"), "0");
    EXPECT_EQ(net.b.sysctl("net.netfilter.nf_conntrack_timestamp"), "0");
    const auto err = read_file(dir.path + "/err");
    // Said once at start: a service should set the settings itself.
    const auto first = err.find("sysctl.d");
    EXPECT_NE(first, std::string::npos) << err;
    EXPECT_EQ(err.find("sysctl.d", first + 1), std::string::npos) << err;
    EXPECT_NE(err.find("SIGHUP"), std::string::npos) << err;
}

// Issue 15: SIGHUP re-reads the config. A detector threshold and the flow log's path change
// while flowtop runs; a broken file changes nothing and says where it is broken.
TEST_F(Export, DaemonSighupReloadsDetectorsAndTheLogPathAndABrokenFileKeepsTheSettings) {
    // Root's own directory: --alert-exec refuses a hook under a world-writable one.
    TempDir run("ftreload", "/run");
    const std::string config = run.path + "/flowtoprc";
    const std::string hook = run.write("hook", "#!/bin/sh\ncat >> " + run.path + "/alerts\n");
    chmod(hook.c_str(), 0755);
    const auto alerts = [&] { return read_file(run.path + "/alerts"); };
    run.write("flowtoprc", "log = " + run.path + "/first.log\ndetect.scan.ports = 1000\n");
    Flowtop ft(net.a, {"--daemon", "-n", "-G", "-t", "0.5", "--netns", net.b.name(), "--config",
                       config, "--alert-exec", hook});
    std::this_thread::sleep_for(1500ms);
    const auto transfer = [&](int port) {
        TcpTransfer t(net, false, port, 2000, 1000);
        const int client = t.client_port();
        t.close();
        return client;
    };
    const auto logged = [&](const std::string& file, int sport) {
        for (int i = 0; i < 40; ++i) {
            for (const auto& line : log_lines(file))
                if (line["sport"] == sport) return true;
            std::this_thread::sleep_for(200ms);
        }
        return false;
    };
    // 100 ports of b probed: under the 1000 of the file in force.
    must(net.a.exec("nmap -n -Pn -sT -T5 -p 1-100 198.51.100.2 >/dev/null"));
    const int first = transfer(6300);
    EXPECT_TRUE(logged(run.path + "/first.log", first));
    EXPECT_EQ(alerts(), "") << "scan.ports=1000 is not reached by 100 ports";

    run.write("flowtoprc", "log = " + run.path + "/second.log\ndetect.scan.ports = 50\n");
    ft.signal(SIGHUP);
    std::this_thread::sleep_for(1500ms);
    must(net.a.exec("nmap -n -Pn -sT -T5 -p 101-200 198.51.100.2 >/dev/null"));
    const int second = transfer(6301);
    EXPECT_TRUE(logged(run.path + "/second.log", second)) << "the log moved to the new path";
    for (int i = 0; i < 40 && alerts().find("port_scan") == std::string::npos; ++i)
        std::this_thread::sleep_for(200ms);
    EXPECT_NE(alerts().find("\"kind\":\"port_scan\""), std::string::npos) << alerts();
    EXPECT_NE(alerts().find("198.51.100.1 probed"), std::string::npos) << alerts();

    // Broken: one bad value. Nothing of the file is taken, not even its good line.
    run.write("flowtoprc",
              "log = " + run.path + "/third.log\ndetect.scan.ports = lots\ninterval = 2\n");
    ft.signal(SIGHUP);
    std::this_thread::sleep_for(1500ms);
    const int third = transfer(6302);
    EXPECT_TRUE(logged(run.path + "/second.log", third)) << "still the log in force";
    EXPECT_FALSE(std::filesystem::exists(run.path + "/third.log"));

    ft.signal(SIGTERM);
    EXPECT_NE(ft.wait(), -1);
    const auto err = ft.stderr_text();
    EXPECT_NE(err.find("SIGHUP: config reloaded: detect.scan.ports = 50 (was 1000)"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("SIGHUP: config reloaded: log = " + run.path + "/second.log (was " +
                       run.path + "/first.log)"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("SIGHUP: config not reloaded, the settings in force stay"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(config + ":2: detect.scan.ports: invalid value 'lots'"), std::string::npos)
        << err;
    EXPECT_FALSE(log_lines(run.path + "/first.log").empty());
}

TEST(ExportUnit, SystemdUnitPassesSystemdAnalyzeVerify) {
    if (sh("command -v systemd-analyze >/dev/null") != 0)
        GTEST_SKIP() << "systemd-analyze is not installed";
    TempDir dir;
    // The unit as shipped, with ExecStart pointing at the binary under test (verify checks that
    // it exists) and the man page where man finds it (verify checks Documentation=).
    must("sed 's|/usr/sbin/flowtop|" FLOWTOP_BINARY "|' " FLOWTOP_SOURCE_DIR
         "/packaging/systemd/flowtop.service > " +
         dir.path + "/flowtop.service");
    must("mkdir -p " + dir.path + "/man/man8 && cp " FLOWTOP_SOURCE_DIR "/man/flowtop.8 " +
         dir.path + "/man/man8/");
    std::string out;
    const int rc = sh(
        "MANPATH=" + dir.path + "/man systemd-analyze verify " + dir.path + "/flowtop.service 2>&1",
        &out);
    EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace flowtop::test
