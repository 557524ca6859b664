// Process attribution against the real kernel: three namespaces (client - router - server),
// known listeners and clients (one set as user nobody), flowtop run in each. Each end reports
// the process that owns its socket; the router reports the same flows as forwarded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// A command's exit status, its output discarded.
int sh(const std::string& cmd) { return flowtop::test::sh(cmd + " >/dev/null 2>&1"); }

// A child process with stdin from a pipe the test holds (closing it ends socat clients) and
// output discarded.
struct Child {
    pid_t pid = -1;
    int stdin_fd = -1;
};

Child spawn(const std::vector<std::string>& argv, bool keep_stdin = false) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return {};
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[0], 0);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    close(fds[0]);
    if (!keep_stdin) {
        close(fds[1]);
        fds[1] = -1;
    }
    return {pid, fds[1]};
}

// The pid a program ends up with after `ip netns exec` and setpriv, which exec in place.
std::string comm_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string s;
    std::getline(in, s);
    return s;
}

class ProcAttribution : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* tool : {"socat", "python3", "setpriv", "nft"})
            if (sh(std::string("command -v ") + tool) != 0) GTEST_SKIP() << "needs " << tool;
        net_.emplace();
        client_ = net_->client.name();
        router_ = net_->router.name();
        server_ = net_->server.name();
    }

    void TearDown() override {
        for (auto& c : children_) {
            if (c.stdin_fd >= 0) close(c.stdin_fd);
            if (c.pid > 0) {
                kill(c.pid, SIGKILL);
                waitpid(c.pid, nullptr, 0);
            }
        }
        net_.reset();
        for (const auto& f : files_) std::remove(f.c_str());
    }

    pid_t start(const std::string& ns, std::vector<std::string> argv, bool as_nobody = false,
                bool keep_stdin = false) {
        std::vector<std::string> full = {"ip", "netns", "exec", ns};
        if (as_nobody)
            for (const char* a : {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"})
                full.emplace_back(a);
        full.insert(full.end(), argv.begin(), argv.end());
        children_.push_back(spawn(full, keep_stdin));
        return children_.back().pid;
    }

    // Runs a client to completion: it sends and exits at once.
    void run_short(const std::string& ns, std::vector<std::string> argv) {
        pid_t pid = start(ns, std::move(argv));
        short_pids_.push_back(pid);
        int status = 0;
        waitpid(pid, &status, 0);
        children_.back().pid = -1;
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "short client failed";
    }

    // flowtop in the background writing JSON lines to a file.
    pid_t start_flowtop(const std::vector<std::string>& prefix, const std::string& out,
                        const std::vector<std::string>& extra = {}) {
        files_.push_back(out);
        std::vector<std::string> argv = prefix;
        for (const char* a : {FLOWTOP_BINARY, "--batch", "-o", "json", "-c", "8", "-t", "0.5"})
            argv.emplace_back(a);
        argv.insert(argv.end(), extra.begin(), extra.end());
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            dup2(fd, 1);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execvp(args[0], args.data());
            _exit(127);
        }
        return pid;
    }

    static int wait_exit(pid_t pid) {
        // Bounded: 8 frames at 0.5 s take about 4 s.
        for (int i = 0; i < 300; ++i) {
            int status = 0;
            if (waitpid(pid, &status, WNOHANG) == pid)
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            std::this_thread::sleep_for(50ms);
        }
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        return -1;
    }

    // The last line flowtop printed for the flow to dport (flows only, not frame headers).
    static json last_flow(const std::string& file, const std::string& proto, int dport) {
        std::ifstream in(file);
        std::string line;
        json found;
        while (std::getline(in, line)) {
            auto j = json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.contains("dport") || !j["dport"].is_number()) continue;
            if (j["proto"] == proto && j["dport"] == dport) found = j;
        }
        return found;
    }

    std::string client_, router_, server_;
    std::optional<flowtop::test::RouterNet> net_;
    std::vector<std::string> files_;
    std::vector<Child> children_;
    std::vector<pid_t> short_pids_;
};

// The system's python: a user-local one (pyenv under /root) is not executable by nobody.
const char* python() {
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

std::string tmp(const std::string& name) {
    return "/tmp/ftp_" + name + "_" + std::to_string(getpid()) + ".json";
}

TEST_F(ProcAttribution, EachEndReportsItsProcessAndTheRouterReportsForwarded) {
    // Servers: TCP/IPv4 and UDP/IPv4 as root, UDP/IPv6 and TCP/IPv6 (dual-stack) as nobody.
    pid_t tcp4_server =
        start(server_, {"socat", "-u", "TCP4-LISTEN:7100,reuseaddr", "OPEN:/dev/null"});
    pid_t udp6_server = start(server_, {"socat", "-u", "UDP6-RECV:7101", "OPEN:/dev/null"}, true);
    pid_t tcp6_server = start(server_,
                              {python(), "-c",
                               "import socket\n"
                               "l=socket.socket(socket.AF_INET6)\n"
                               "l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                               "l.bind(('::',7102)); l.listen(); keep=[]\n"
                               "while True:\n"
                               " c,_=l.accept(); keep.append(c); c.recv(100)\n"},
                              true);
    pid_t udp4_server = start(server_, {python(), "-c",
                                        "import socket\n"
                                        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                        "s.bind(('0.0.0.0',7103))\n"
                                        "while True: s.recvfrom(100)\n"});
    std::this_thread::sleep_for(700ms);  // listeners bound

    // flowtop at each end and in the middle; the server's through --netns from the host.
    std::string out_c = tmp("client"), out_s = tmp("server"), out_r = tmp("router");
    pid_t ft_c = start_flowtop({"ip", "netns", "exec", client_}, out_c);
    pid_t ft_r = start_flowtop({"ip", "netns", "exec", router_}, out_r);
    pid_t ft_s = start_flowtop({}, out_s, {"--netns", server_});
    std::this_thread::sleep_for(1200ms);  // flowtop listening for events

    // Long-lived clients: TCP/IPv4 socat as root, connected UDP/IPv6 as nobody.
    pid_t tcp4_client = start(client_, {"socat", "-u", "-", "TCP4:198.51.100.1:7100"}, false, true);
    pid_t udp6_client = start(client_,
                              {python(), "-c",
                               "import socket,time\n"
                               "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
                               "s.connect(('2001:db8:2::1',7101)); s.send(b'hi')\n"
                               "time.sleep(30)\n"},
                              true);
    // Short-lived clients: send, linger 50 ms (about what curl takes to read a reply) and exit,
    // long before flowtop's next tick. One that exits within a millisecond of its first packet
    // races the NEW-event path and can be missed: see proc_attributor.hpp.
    run_short(client_, {python(), "-c",
                        "import socket,time\n"
                        "s=socket.create_connection(('2001:db8:2::1',7102)); s.sendall(b'hi')\n"
                        "time.sleep(0.05)\n"});
    run_short(client_, {python(), "-c",
                        "import socket,time\n"
                        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                        "s.sendto(b'hi',('198.51.100.1',7103))\n"
                        "time.sleep(0.05)\n"});
    ASSERT_EQ(write(children_[children_.size() - 4].stdin_fd, "hello\n", 6), 6);

    std::string tcp4_client_comm = comm_of(tcp4_client);
    std::string udp6_client_comm = comm_of(udp6_client);
    EXPECT_EQ(wait_exit(ft_c), 0);
    EXPECT_EQ(wait_exit(ft_s), 0);
    EXPECT_EQ(wait_exit(ft_r), 0);

    struct Want {
        const char* proto;
        int dport;
        pid_t client_pid;
        const char* client_user;
        pid_t server_pid;
        const char* server_user;
    };
    const Want wants[] = {
        {"tcp", 7100, tcp4_client, "root", tcp4_server, "root"},
        {"udp", 7101, udp6_client, "nobody", udp6_server, "nobody"},
        {"tcp", 7102, short_pids_.at(0), "root", tcp6_server, "nobody"},
        {"udp", 7103, short_pids_.at(1), "root", udp4_server, "root"},
    };
    for (const auto& w : wants) {
        SCOPED_TRACE(std::string(w.proto) + " port " + std::to_string(w.dport));
        json c = last_flow(out_c, w.proto, w.dport);
        ASSERT_FALSE(c.is_null()) << "client end: flow missing";
        EXPECT_EQ(c["pid"], w.client_pid) << c.dump();
        EXPECT_EQ(c["user"], w.client_user) << c.dump();
        EXPECT_EQ(c["forwarded"], false);
        json s = last_flow(out_s, w.proto, w.dport);
        ASSERT_FALSE(s.is_null()) << "server end: flow missing";
        EXPECT_EQ(s["pid"], w.server_pid) << s.dump();
        EXPECT_EQ(s["user"], w.server_user) << s.dump();
        json r = last_flow(out_r, w.proto, w.dport);
        ASSERT_FALSE(r.is_null()) << "router: flow missing";
        EXPECT_EQ(r["forwarded"], true) << r.dump();
        EXPECT_TRUE(r["pid"].is_null()) << r.dump();
        EXPECT_TRUE(r["comm"].is_null()) << r.dump();
    }
    EXPECT_EQ(last_flow(out_c, "tcp", 7100)["comm"], tcp4_client_comm);
    EXPECT_EQ(last_flow(out_c, "tcp", 7100)["comm"], "socat");
    EXPECT_EQ(last_flow(out_c, "udp", 7101)["comm"], udp6_client_comm);
    EXPECT_EQ(last_flow(out_s, "tcp", 7100)["comm"], "socat");
    EXPECT_EQ(last_flow(out_s, "udp", 7101)["comm"], "socat");
    EXPECT_EQ(last_flow(out_s, "udp", 7103)["cmdline"].get<std::string>().find("7103") !=
                  std::string::npos,
              true);
    // The short-lived clients had exited long before the last frame: still attributed.
    EXPECT_EQ(last_flow(out_c, "tcp", 7102)["comm"].get<std::string>().rfind("python", 0), 0u);
    EXPECT_EQ(last_flow(out_c, "udp", 7103)["comm"].get<std::string>().rfind("python", 0), 0u);
}

TEST_F(ProcAttribution, NoProcLeavesProcessFieldsNull) {
    start(server_, {"socat", "-u", "TCP4-LISTEN:7100,reuseaddr", "OPEN:/dev/null"});
    std::this_thread::sleep_for(500ms);
    std::string out = tmp("noproc");
    pid_t ft = start_flowtop({"ip", "netns", "exec", server_}, out, {"--no-proc", "-c", "4"});
    std::this_thread::sleep_for(1000ms);
    pid_t client = start(client_, {"socat", "-u", "-", "TCP4:198.51.100.1:7100"}, false, true);
    (void)client;
    EXPECT_EQ(wait_exit(ft), 0);
    json s = last_flow(out, "tcp", 7100);
    ASSERT_FALSE(s.is_null());
    EXPECT_TRUE(s["pid"].is_null());
    EXPECT_TRUE(s["user"].is_null());
    EXPECT_EQ(s["forwarded"], false);
}

}  // namespace
