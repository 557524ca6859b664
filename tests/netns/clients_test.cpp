// The router's view of its LAN clients (issue 16 item 1): two IPv4 clients behind nft
// masquerade and two IPv6 clients without NAT, each with its own transfers through the router
// to a server. The router's flowtop must report each client's bytes both ways as conntrack -L
// counts them, the Clients tab (tmux) and batch --group client must agree, and a dnsmasq
// leases file must name the clients and rename them when it changes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/util/local_addresses.hpp"
#include "harness.hpp"

using namespace flowtop::test;

namespace {

struct Totals {
    std::uint64_t sent = 0, received = 0;
    int flows = 0;
};

// The server: for each connection, a line "UP DOWN", UP bytes in, DOWN bytes out; then the
// connection stays open (idle) so the counters stand still.
const char* k_server = R"(import socket, threading
def serve(fam, addr, port):
    l = socket.socket(fam)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port)); l.listen(16); keep = []
    while True:
        c, _ = l.accept(); keep.append(c)
        f = c.makefile('rb'); up, down = map(int, f.readline().split())
        got = 0
        while got < up: got += len(f.read1(65536))
        c.sendall(b'x' * down)
threading.Thread(target=serve, args=(socket.AF_INET, '198.51.100.1', 7300), daemon=True).start()
serve(socket.AF_INET6, '2001:db8:2::1', 7301)
)";

// The clients: each transfer from its own source address; "done" in the file when all are.
std::string client_script(const std::string& done_file) {
    return R"(import socket, sys, time
transfers = [
    (socket.AF_INET, '192.0.2.1', '198.51.100.1', 7300, 30000, 200000),
    (socket.AF_INET, '192.0.2.1', '198.51.100.1', 7300, 5000, 70000),
    (socket.AF_INET, '192.0.2.2', '198.51.100.1', 7300, 120000, 10000),
    (socket.AF_INET6, '2001:db8:1::1', '2001:db8:2::1', 7301, 40000, 300000),
    (socket.AF_INET6, '2001:db8:1::2', '2001:db8:2::1', 7301, 9000, 1000),
]
keep = []
for fam, src, dst, port, up, down in transfers:
    s = socket.socket(fam); s.bind((src, 0)); s.connect((dst, port))
    s.sendall(('%d %d\n' % (up, down)).encode() + b'y' * up)
    got = 0
    while got < down: got += len(s.recv(65536))
    keep.append(s)
open(')" + done_file +
           R"(', 'w').write('done')
time.sleep(120)
)";
}

class Clients : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* tool : {"python3", "nft", "conntrack", "tmux"})
            if (sh(std::string("command -v ") + tool + " >/dev/null") != 0)
                GTEST_SKIP() << "needs " << tool;
        net_.emplace();
        const auto& c = net_->client;
        const auto& r = net_->router;
        dir_ = "/tmp/ftclients_" + std::to_string(getpid());
        std::filesystem::create_directories(dir_);
        leases_ = dir_ + "/dnsmasq.leases";
        write_leases("laptop-anna", "desktop-ben");
        // A second client on the LAN (another address of the client namespace's link).
        must("ip -n " + c.name() + " addr add 192.0.2.2/24 dev c0");
        must("ip -n " + c.name() + " addr add 2001:db8:1::2/64 dev c0 nodad");
        // The WAN side: a default route (so its network is not the LAN) and masquerade.
        must("ip -n " + r.name() + " route add default via 198.51.100.1");
        must("ip -n " + r.name() + " -6 route add default via 2001:db8:2::1");
        must(
            r.exec("nft 'table ip ftnat { chain post { type nat hook postrouting priority 100; "
                   "oifname \"r1\" masquerade; }; }'"));
        // Counters only for flows made while accounting is on (the test namespace's own).
        r.set_sysctl("net.netfilter.nf_conntrack_acct", "1");
    }

    void TearDown() override {
        tmux_.reset();
        for (pid_t pid : children_) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        net_.reset();
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }

    void write_leases(const std::string& first, const std::string& second) {
        // Written aside and renamed in, as dnsmasq does: a reader never sees half a file.
        const std::string tmp = leases_ + ".new";
        std::ofstream(tmp, std::ios::trunc)
            << "1764751200 52:54:00:00:00:01 192.0.2.1 " << first << " *\n"
            << "1764751200 52:54:00:00:00:02 192.0.2.2 " << second << " *\n"
            << "duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01\n"
            << "1764751200 1 2001:db8:1::1 " << first << "-v6 *\n";
        std::filesystem::rename(tmp, leases_);
    }

    void spawn(const std::string& ns, const std::string& script) {
        pid_t pid = fork();
        if (pid == 0) {
            const int null = open("/dev/null", O_RDWR);
            dup2(null, 0);
            dup2(null, 1);
            execlp("ip", "ip", "netns", "exec", ns.c_str(), "python3", "-c", script.c_str(),
                   static_cast<char*>(nullptr));
            _exit(127);
        }
        children_.push_back(pid);
    }

    // conntrack -L in the router: bytes per client (the original source) of the test's flows.
    std::map<std::string, Totals> conntrack_totals() {
        std::map<std::string, Totals> out;
        std::istringstream in(
            capture(net_->router.exec("conntrack -L -f ipv4 -p tcp 2>/dev/null")) +
            capture(net_->router.exec("conntrack -L -f ipv6 -p tcp 2>/dev/null")));
        for (std::string line; std::getline(in, line);) {
            std::istringstream words(line);
            std::string src, dport;
            std::vector<std::uint64_t> bytes;
            for (std::string w; words >> w;) {
                if (w.rfind("src=", 0) == 0 && src.empty()) src = w.substr(4);
                if (w.rfind("dport=", 0) == 0 && dport.empty()) dport = w.substr(6);
                if (w.rfind("bytes=", 0) == 0) bytes.push_back(std::stoull(w.substr(6)));
            }
            if ((dport != "7300" && dport != "7301") || bytes.size() != 2) continue;
            auto& t = out[src];
            t.sent += bytes[0];
            t.received += bytes[1];
            ++t.flows;
        }
        return out;
    }

    std::optional<RouterNet> net_;
    std::string dir_, leases_;
    std::optional<TmuxSession> tmux_{std::in_place, "ftcl"};
    std::vector<pid_t> children_;
};

}  // namespace

TEST_F(Clients, RouterCountsEachLanClientLikeConntrackAndTheTabAgreesWithGroupClient) {
    spawn(net_->server.name(), k_server);
    std::this_thread::sleep_for(800ms);  // listening
    const std::string done = dir_ + "/done";
    spawn(net_->client.name(), client_script(done));
    for (int i = 0; i < 100 && !std::filesystem::exists(done); ++i)
        std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(std::filesystem::exists(done)) << "the transfers did not finish";

    const auto kernel = conntrack_totals();
    ASSERT_EQ(kernel.size(), 4u) << "four clients in conntrack -L";
    EXPECT_EQ(kernel.at("192.0.2.1").flows, 2);

    // Batch: the last of three frames, one line per client.
    const std::string filter = "port:7300 or port:7301";
    const std::string out = must(net_->router.exec(std::string(FLOWTOP_BINARY) +
                                                   " --group client -o json -c 3 -t 0.5 "
                                                   "--leases " +
                                                   leases_ + " --filter '" + filter + "'"));
    std::map<std::string, Json> batch;
    std::uint64_t last_seq = 0;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        auto j = Json::parse(line, nullptr, false);
        if (j.is_discarded() || j.value("type", "") != "client") continue;
        const auto seq = j["seq"].get<std::uint64_t>();
        if (seq > last_seq) batch.clear();
        last_seq = std::max(last_seq, seq);
        batch[j["client"].get<std::string>()] = j;
    }
    ASSERT_EQ(batch.size(), 4u) << out;  // the server (WAN side) is no client
    for (const auto& [addr, t] : kernel) {
        ASSERT_TRUE(batch.contains(addr)) << addr << " missing in " << out;
        const auto& j = batch[addr];
        // ±1 packet's worth a flow (a segment in flight between the two reads).
        const double slack = 1500.0 * t.flows;
        EXPECT_NEAR(j["sent_bytes"].get<double>(), static_cast<double>(t.sent), slack) << addr;
        EXPECT_NEAR(j["received_bytes"].get<double>(), static_cast<double>(t.received), slack)
            << addr;
        EXPECT_EQ(j["flows"].get<int>(), t.flows) << addr;
        EXPECT_EQ(j["local"], false);
    }
    // Directions are the client's: the downloads of 192.0.2.1 are what it received.
    EXPECT_GT(batch["192.0.2.1"]["received_bytes"].get<double>(), 270000.0);
    EXPECT_GT(batch["192.0.2.2"]["sent_bytes"].get<double>(), 120000.0);
    EXPECT_EQ(batch["192.0.2.1"]["name"], "laptop-anna");
    EXPECT_EQ(batch["192.0.2.2"]["name"], "desktop-ben");
    EXPECT_EQ(batch["2001:db8:1::1"]["name"], "laptop-anna-v6");
    EXPECT_EQ(batch["192.0.2.1"]["destinations"], Json::array({"198.51.100.1"}));

    // The live view: Tab to Clients; each row shows the same bytes as the batch.
    const std::string cmd = net_->router.exec(std::string(FLOWTOP_BINARY) + " -n --leases " +
                                              leases_ + " --filter '" + filter + "'") +
                            "; sleep 30";
    tmux_->start(cmd, 100, 24);
    ASSERT_TRUE(tmux_->wait_for("DESTINATION")) << tmux_->screen();
    tmux_->keys("Tab Tab");
    ASSERT_TRUE(tmux_->wait_for("[Clients]")) << tmux_->screen();
    ASSERT_TRUE(tmux_->wait_for("laptop-anna (192.0.2.1)")) << tmux_->screen();
    std::this_thread::sleep_for(1500ms);  // a frame or two more
    for (const auto& [addr, j] : batch) {
        const std::string label =
            j["name"].is_string() ? j["name"].get<std::string>() + " (" + addr + ")" : addr;
        const std::string row = tmux_->line_with(label + " ");
        ASSERT_FALSE(row.empty()) << label << " in\n" << tmux_->screen();
        const auto sent = flowtop::ui::human_bytes(j["sent_bytes"].get<double>());
        const auto received = flowtop::ui::human_bytes(j["received_bytes"].get<double>());
        EXPECT_NE(row.find(" " + sent + " "), std::string::npos) << sent << " in " << row;
        EXPECT_NE(row.find(" " + received + " "), std::string::npos) << received << " in " << row;
    }
    const std::string capture_text = tmux_->screen();
    if (const char* keep = std::getenv("FLOWTOP_CLIENTS_CAPTURE"))
        std::ofstream(keep, std::ios::trunc) << capture_text;

    // The leases file changes: the client is renamed within a few seconds.
    write_leases("laptop-carla", "desktop-ben");
    EXPECT_TRUE(tmux_->wait_for("laptop-carla (192.0.2.1)", 5s)) << tmux_->screen();
    EXPECT_EQ(tmux_->screen().find("laptop-anna (192.0.2.1)"), std::string::npos)
        << tmux_->screen();

    // The Flows tab at 80x24 on the router: the LAN client where the process would be.
    must("tmux resize-window -t " + tmux_->name() + " -x 80 -y 24");
    tmux_->keys("Tab Tab Tab Tab Tab");
    ASSERT_TRUE(tmux_->wait_for("[Flows]")) << tmux_->screen();
    ASSERT_TRUE(tmux_->wait_for("CLIENT")) << tmux_->screen();
    EXPECT_TRUE(tmux_->wait_for("laptop-carla")) << tmux_->screen();
    EXPECT_NE(tmux_->screen().find("desktop-ben"), std::string::npos) << tmux_->screen();
    EXPECT_NE(tmux_->screen().find(" CC "), std::string::npos) << tmux_->screen();
    EXPECT_NE(tmux_->screen().find("ESTAB "), std::string::npos) << tmux_->screen();

    // Enter on a Clients row: the Flows tab with that client's filter and its flows only.
    must("tmux resize-window -t " + tmux_->name() + " -x 140 -y 24");
    tmux_->keys("Tab Tab");
    ASSERT_TRUE(tmux_->wait_for("[Clients]")) << tmux_->screen();
    ASSERT_TRUE(tmux_->wait_for("laptop-carla (192.0.2.1)")) << tmux_->screen();
    // Its place among the rows (idle flows: the order holds still), then Down to it: the
    // footer's [N/4] says which row is selected.
    std::size_t place = 0;
    {
        std::istringstream in(tmux_->screen());
        bool below = false;
        for (std::string line; std::getline(in, line);) {
            if (line.starts_with("CLIENT ")) {
                below = true;
                continue;
            }
            if (!below) continue;
            ++place;
            if (line.find("laptop-carla (192.0.2.1)") != std::string::npos) break;
        }
    }
    ASSERT_GE(place, 1u) << tmux_->screen();
    tmux_->keys("Home");
    for (int i = 0; i < 8 && !tmux_->wait_for("[" + std::to_string(place) + "/4]", 300ms); ++i)
        tmux_->keys("Down");
    ASSERT_TRUE(tmux_->wait_for("[" + std::to_string(place) + "/4]")) << tmux_->screen();
    tmux_->keys("Enter");
    ASSERT_TRUE(tmux_->wait_for("[Flows]")) << tmux_->screen();
    ASSERT_TRUE(tmux_->wait_for("filter: client:192.0.2.1")) << tmux_->screen();
    std::this_thread::sleep_for(1200ms);  // a frame under the new filter
    std::vector<std::string> rows;
    {
        std::istringstream in(tmux_->screen());
        bool below = false;
        for (std::string line; std::getline(in, line);) {
            if (line.find("DESTINATION") != std::string::npos) {
                below = true;
                continue;
            }
            if (!below) continue;
            if (line.find_first_not_of(' ') == std::string::npos) break;
            rows.push_back(line);
        }
    }
    EXPECT_EQ(rows.size(), 2u) << "the two flows of 192.0.2.1 in\n" << tmux_->screen();
    for (const auto& row : rows) {
        EXPECT_NE(row.find("laptop-carla"), std::string::npos) << row;
        EXPECT_EQ(row.find("desktop-ben"), std::string::npos) << row;
        EXPECT_EQ(row.find("2001:db8:1::"), std::string::npos) << row;
    }
}

namespace {

// Runs f in a thread that has entered the namespace (its sockets and /proc/thread-self/net are
// that namespace's).
template <typename F>
void in_namespace(const Namespace& ns, F&& f) {
    const int fd = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::thread t([&] {
        if (setns(fd, CLONE_NEWNET) == 0) f();
    });
    t.join();
    close(fd);
}

bool lan(const flowtop::LocalAddresses& l, const char* addr) {
    auto a = flowtop::parse_addr(addr);
    return l.is_lan(a->second, a->first);
}

}  // namespace

TEST(LanAddresses, InterfaceNetworksAreTheLanExceptTheDefaultRoutesAndChangesAreSeen) {
    TestNet net;
    std::optional<flowtop::AddressWatch> watch;
    flowtop::LocalAddresses before;
    in_namespace(net.a, [&] {
        watch.emplace();
        before = flowtop::LocalAddresses::of_current_namespace();
    });
    ASSERT_TRUE(watch);
    EXPECT_TRUE(lan(before, "198.51.100.77")) << "eth0's network is a LAN";
    EXPECT_TRUE(lan(before, "2001:db8::77"));
    EXPECT_FALSE(lan(before, "203.0.113.5"));
    // Drain what came meanwhile (a link-local address finishing DAD says so too).
    watch->changed(1);

    // An address in a new network, and default routes over eth0: the watch says so, and
    // eth0's networks are the WAN's now, not the LAN; the new one stays on eth0 too, so it
    // goes with them.
    must("ip -n " + net.a.name() + " addr add 203.0.113.1/24 dev eth0");
    bool seen = false;
    for (int i = 0; i < 50 && !seen; ++i) {
        seen = watch->changed(2);
        if (!seen) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(seen) << "no rtnetlink message for the new address";
    flowtop::LocalAddresses added;
    in_namespace(net.a, [&] { added = flowtop::LocalAddresses::of_current_namespace(); });
    EXPECT_TRUE(lan(added, "203.0.113.5"));
    EXPECT_TRUE(added.contains(flowtop::Family::ipv4, flowtop::parse_addr("203.0.113.1")->first));

    must("ip -n " + net.a.name() + " route add default via 198.51.100.2");
    must("ip -n " + net.a.name() + " -6 route add default via 2001:db8::2");
    flowtop::LocalAddresses routed;
    in_namespace(net.a, [&] { routed = flowtop::LocalAddresses::of_current_namespace(); });
    EXPECT_FALSE(lan(routed, "198.51.100.77")) << "the default route's network is the WAN";
    EXPECT_FALSE(lan(routed, "2001:db8::77"));
    EXPECT_TRUE(lan(routed, "198.51.100.1")) << "this host's own address stays";
    EXPECT_TRUE(lan(routed, "10.1.2.3")) << "the private ranges stay";
    // --lan says it explicitly.
    in_namespace(net.a, [&] {
        routed = flowtop::LocalAddresses::of_current_namespace(
            {*flowtop::parse_network("198.51.100.0/24")});
    });
    EXPECT_TRUE(lan(routed, "198.51.100.77"));
    EXPECT_FALSE(lan(routed, "10.1.2.3"));
}
