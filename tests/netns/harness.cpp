#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace flowtop::test {

int sh(const std::string& command, std::string* out) {
    std::FILE* p = popen(command.c_str(), "r");
    if (!p) return -1;
    char buf[4096];
    std::string text;
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    int status = pclose(p);
    if (out) *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string must(const std::string& command) {
    std::string out;
    int rc = sh(command, &out);
    if (rc != 0) ADD_FAILURE() << "command failed (" << rc << "): " << command << "\n" << out;
    return out;
}

std::string capture(const std::string& command) {
    std::string out;
    sh(command, &out);
    return out;
}

namespace {
std::atomic<int> g_namespaces{0};

// The namespace tests make namespaces, links and nft rules: without root (or without the
// tools) they skip, each saying why, rather than fail.
class NeedsRootAndTools : public ::testing::Environment {
  public:
    void SetUp() override {
        if (geteuid() != 0)
            GTEST_SKIP() << "the network-namespace tests need root (run ./scripts/test, which "
                            "uses sudo)";
        for (const char* tool : {"ip", "nft", "conntrack"})
            if (sh(std::string("command -v ") + tool + " >/dev/null") != 0)
                GTEST_SKIP() << "the network-namespace tests need " << tool
                             << " (./scripts/test installs it)";
    }
};
// GoogleTest takes ownership of registered environments.
[[maybe_unused]] ::testing::Environment* const g_needs_root =
    ::testing::AddGlobalTestEnvironment(new NeedsRootAndTools);
}  // namespace

Namespace::Namespace(const std::string& role)
    : name_("ftt" + role + std::to_string(getpid()) + "n" + std::to_string(g_namespaces++)) {
    must("ip netns add " + name_);
    must("ip -n " + name_ + " link set lo up");
}

Namespace::~Namespace() {
    sh("ip netns pids " + name_ + " 2>/dev/null | xargs -r kill -9 2>/dev/null");
    sh("ip netns del " + name_ + " 2>/dev/null");
}

std::string Namespace::exec(const std::string& command) const {
    return "ip netns exec " + name_ + " " + command;
}

std::string Namespace::sysctl(const std::string& key) const {
    std::string out;
    sh(exec("sysctl -n " + key), &out);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

void Namespace::set_sysctl(const std::string& key, const std::string& value) const {
    must(exec("sysctl -q -w " + key + "=" + value));
}

int Namespace::socket(int domain, int type) const {
    int target = open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (target < 0 || home < 0) throw std::runtime_error("cannot open namespace files");
    if (setns(target, CLONE_NEWNET) != 0) throw std::runtime_error("setns failed");
    int fd = ::socket(domain, type | SOCK_CLOEXEC, 0);
    setns(home, CLONE_NEWNET);
    close(target);
    close(home);
    if (fd < 0) throw std::runtime_error("socket failed");
    return fd;
}

TestNet::TestNet() {
    must("ip link add eth0 netns " + a.name() + " type veth peer name eth0 netns " + b.name());
    must("ip -n " + a.name() + " addr add 198.51.100.1/24 dev eth0");
    must("ip -n " + b.name() + " addr add 198.51.100.2/24 dev eth0");
    must("ip -n " + a.name() + " addr add 2001:db8::1/64 dev eth0 nodad");
    must("ip -n " + b.name() + " addr add 2001:db8::2/64 dev eth0 nodad");
    for (const Namespace* ns : {&a, &b}) {
        must("ip -n " + ns->name() + " link set eth0 up");
        // Conntrack tracks in a namespace only once a rule uses it.
        must(
            ns->exec("nft -f - <<'EOF'\n"
                     "table inet fttest {\n"
                     "  chain in { type filter hook input priority 0; ct state "
                     "new,established,related accept; }\n"
                     "  chain out { type filter hook output priority 0; ct state "
                     "new,established,related accept; }\n"
                     "}\nEOF"));
    }
}

NetnsPair::NetnsPair() {
    must("ip -n " + client + " link add v0 type veth peer name v1 netns " + server);
    must("ip -n " + client + " addr add 198.51.100.1/24 dev v0");
    must("ip -n " + server + " addr add 198.51.100.2/24 dev v1");
    must("ip -n " + client + " addr add 2001:db8:1::1/64 dev v0 nodad");
    must("ip -n " + server + " addr add 2001:db8:1::2/64 dev v1 nodad");
    must("ip -n " + client + " link set v0 up");
    must("ip -n " + server + " link set v1 up");
    must(client_ns.exec(
        "nft 'add table inet fte; add chain inet fte out { type filter hook output priority 0; "
        "}; add rule inet fte out ct state new,established accept'"));
}

NetnsPair::~NetnsPair() {
    if (!made_etc_) return;
    std::error_code ec;
    std::filesystem::remove_all("/etc/netns/" + client, ec);
}

void NetnsPair::set_resolver(const std::string& nameserver) {
    std::filesystem::create_directories("/etc/netns/" + client);
    made_etc_ = true;
    must("printf 'nameserver " + nameserver + "\\noptions timeout:1 attempts:1\\n' > /etc/netns/" +
         client + "/resolv.conf");
}

RouterNet::RouterNet() {
    for (const Namespace* ns : {&client, &router, &server}) {
        // Without DAD the addresses are usable at once: IPv6 forwarding works from the first
        // packet.
        must(
            ns->exec("sysctl -qw net.ipv6.conf.default.accept_dad=0 "
                     "net.ipv6.conf.all.accept_dad=0"));
        // Conntrack is active in a namespace only once a rule uses it.
        must(
            ns->exec("nft 'table inet ftr { chain i { type filter hook input priority 0; "
                     "ct state new accept; }; chain o { type filter hook output priority 0; "
                     "ct state new accept; }; chain f { type filter hook forward priority 0; "
                     "ct state new accept; }; }'"));
    }
    must("ip link add c0 netns " + client.name() + " type veth peer name r0 netns " +
         router.name());
    must("ip link add s0 netns " + server.name() + " type veth peer name r1 netns " +
         router.name());
    auto ip = [](const Namespace& ns, const std::string& args) {
        must("ip -n " + ns.name() + " " + args);
    };
    ip(client, "addr add 192.0.2.1/24 dev c0");
    ip(client, "addr add 2001:db8:1::1/64 dev c0 nodad");
    ip(router, "addr add 192.0.2.254/24 dev r0");
    ip(router, "addr add 2001:db8:1::ff/64 dev r0 nodad");
    ip(router, "addr add 198.51.100.254/24 dev r1");
    ip(router, "addr add 2001:db8:2::ff/64 dev r1 nodad");
    ip(server, "addr add 198.51.100.1/24 dev s0");
    ip(server, "addr add 2001:db8:2::1/64 dev s0 nodad");
    ip(client, "link set c0 up");
    ip(router, "link set r0 up");
    ip(router, "link set r1 up");
    ip(server, "link set s0 up");
    ip(client, "route add default via 192.0.2.254");
    ip(client, "-6 route add default via 2001:db8:1::ff");
    ip(server, "route add default via 198.51.100.254");
    ip(server, "-6 route add default via 2001:db8:2::ff");
    // Forwarding in the router namespace only (the host's sysctls stay untouched).
    must(router.exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"));
}

std::vector<Json> Frame::find(const std::string& proto, int dport) const {
    std::vector<Json> out;
    for (const auto& f : flows)
        if (f["proto"] == proto && (dport == 0 || (f["dport"].is_number() && f["dport"] == dport)))
            out.push_back(f);
    return out;
}

namespace {

std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::FILE* f = std::fopen(
        ("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children").c_str(),
        "r");
    if (!f) return out;
    int child = 0;
    while (std::fscanf(f, "%d", &child) == 1) out.push_back(child);
    std::fclose(f);
    return out;
}

std::string comm_of(pid_t pid) {
    std::string out;
    sh("cat /proc/" + std::to_string(pid) + "/comm 2>/dev/null", &out);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

}  // namespace

TmuxSession::TmuxSession(const std::string& prefix) {
    static std::atomic<int> counter{0};
    name_ = prefix + std::to_string(getpid()) + "x" + std::to_string(counter++);
}

TmuxSession::~TmuxSession() { sh("tmux kill-session -t " + name_ + " 2>/dev/null"); }

void TmuxSession::start(const std::string& command, int width, int height) const {
    sh("tmux kill-session -t " + name_ + " 2>/dev/null");  // a restart: the new one takes over
    must("tmux new-session -d -s " + name_ + " -x " + std::to_string(width) + " -y " +
         std::to_string(height) + " \"" + command + "\"");
}

std::string TmuxSession::screen() const {
    std::string out;
    sh("tmux capture-pane -p -t " + name_, &out);
    return out;
}

void TmuxSession::keys(const std::string& keys) const {
    must("tmux send-keys -t " + name_ + " " + keys);
}

bool TmuxSession::wait_for(const std::string& text, std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (screen().find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

bool TmuxSession::wait_gone(const std::string& text, std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (screen().find(text) == std::string::npos) return true;
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

std::string TmuxSession::line_with(const std::string& text) const {
    std::istringstream in(screen());
    for (std::string line; std::getline(in, line);)
        if (line.find(text) != std::string::npos) return line;
    return "";
}

ExecutableCopy::ExecutableCopy() {
    char tmpl[] = "/tmp/flowtop-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    path_ = dir_ + "/flowtop";
    try {
        std::filesystem::copy_file(FLOWTOP_BINARY, path_);
        std::filesystem::permissions(dir_, std::filesystem::perms(0755));
        std::filesystem::permissions(path_, std::filesystem::perms(0755));
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
        throw;
    }
}

ExecutableCopy::~ExecutableCopy() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

Flowtop::Flowtop(const Namespace& ns, const std::vector<std::string>& args, uid_t uid,
                 const Sandbox* sandbox)
    : sandboxed_(sandbox != nullptr) {
    if (uid != 0) copy_.emplace();
    const std::string binary = copy_ ? copy_->path() : FLOWTOP_BINARY;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
        int fd = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(120);
        if (uid != 0 && (setgid(uid) != 0 || setuid(uid) != 0)) _exit(121);
        // flowtop keeps a signal ignored at start ignored (nohup): start it as a shell would in
        // the foreground, whatever the test runner inherited (a background job ignores SIGINT).
        for (int signo = 1; signo < NSIG; ++signo) ::signal(signo, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        // Tests kill flowtop with SIGSEGV and SIGABRT on purpose: no core files.
        rlimit no_core{0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        std::vector<std::string> words;
        if (sandbox) {
            words = {"/bin/sh", FLOWTOP_SOURCE_DIR "/scripts/netns-sandbox"};
            for (const Namespace* visible : sandbox->visible) words.push_back(visible->name());
            words.push_back("--");
        }
        words.push_back(binary);
        words.insert(words.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& w : words) argv.push_back(w.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(122);
    }
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
    fcntl(out_, F_SETFL, O_NONBLOCK);
    fcntl(err_, F_SETFL, O_NONBLOCK);
}

Flowtop::~Flowtop() {
    if (!reaped_ && pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
    if (err_ >= 0) close(err_);
}

bool Flowtop::read_line(std::string& line, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
            line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return true;
        }
        if (eof_) return false;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{out_, POLLIN, 0};
        poll(&p, 1, static_cast<int>(left.count()));
        char buf[65536];
        ssize_t n = read(out_, buf, sizeof buf);
        if (n > 0) buffer_.append(buf, static_cast<std::size_t>(n));
        if (n == 0) eof_ = true;
    }
}

std::optional<Frame> Flowtop::next_frame(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string line;
    Frame frame;
    for (;;) {
        if (!read_line(line, deadline)) return std::nullopt;
        auto j = Json::parse(line, nullptr, false);
        if (j.is_discarded()) {
            ADD_FAILURE() << "not JSON: " << line;
            return std::nullopt;
        }
        if (j["type"] == "frame") {
            frame.frame = j;
            break;
        }
        if (j["type"] == "alert") {
            frame.alerts.push_back(j);
            frame.alert_lines.push_back(line);
        }
    }
    const std::size_t want = frame.frame["flows"].get<std::size_t>();
    while (frame.flows.size() < want) {
        if (!read_line(line, deadline)) return std::nullopt;
        frame.flows.push_back(Json::parse(line));
    }
    return frame;
}

std::vector<Frame> Flowtop::all_frames(std::chrono::milliseconds timeout) {
    std::vector<Frame> frames;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (auto f = next_frame(std::chrono::duration_cast<std::chrono::milliseconds>(
               deadline - std::chrono::steady_clock::now())))
        frames.push_back(std::move(*f));
    return frames;
}

pid_t Flowtop::pid() const {
    if (!sandboxed_) return pid_;
    // unshare -> sh (pid 1 inside) -> flowtop; it takes a moment to get there.
    for (int tries = 0; tries < 100; ++tries) {
        std::vector<pid_t> level = {pid_};
        for (int depth = 0; depth < 3 && !level.empty(); ++depth) {
            std::vector<pid_t> next;
            for (pid_t p : level) {
                if (depth > 0 && comm_of(p) == "flowtop") return p;
                for (pid_t c : children_of(p)) next.push_back(c);
            }
            level = next;
        }
        std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "flowtop did not start in its sandbox";
    return -1;
}

void Flowtop::signal(int signo) const {
    if (pid_t p = pid(); p > 0) kill(p, signo);
}

int Flowtop::wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        // Keep draining output so a full pipe never blocks the process.
        char buf[65536];
        while (read(out_, buf, sizeof buf) > 0) {
        }
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            return status;
        }
        std::this_thread::sleep_for(20ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    reaped_ = true;
    return -1;
}

std::string Flowtop::stderr_text() {
    char buf[4096];
    ssize_t n;
    while ((n = read(err_, buf, sizeof buf)) > 0)
        err_text_.append(buf, static_cast<std::size_t>(n));
    return err_text_;
}

namespace {

sockaddr_storage address(bool ipv6, const char* host, int port, socklen_t& len) {
    sockaddr_storage ss{};
    if (ipv6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(static_cast<std::uint16_t>(port));
        inet_pton(AF_INET6, host, &s6->sin6_addr);
        len = sizeof(sockaddr_in6);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(static_cast<std::uint16_t>(port));
        inet_pton(AF_INET, host, &s4->sin_addr);
        len = sizeof(sockaddr_in);
    }
    return ss;
}

void send_all(int fd, std::size_t bytes) {
    std::vector<char> chunk(65536, 'x');
    while (bytes > 0) {
        ssize_t n = send(fd, chunk.data(), std::min(bytes, chunk.size()), MSG_NOSIGNAL);
        if (n <= 0) return;
        bytes -= static_cast<std::size_t>(n);
    }
}

void recv_all(int fd, std::size_t bytes) {
    std::vector<char> chunk(65536);
    while (bytes > 0) {
        ssize_t n = recv(fd, chunk.data(), std::min(bytes, chunk.size()), 0);
        if (n <= 0) return;
        bytes -= static_cast<std::size_t>(n);
    }
}

// listener in a, connected client in b, accepted server socket in a.
void connect_pair(const TestNet& net, bool ipv6, int port, int& listener, int& client,
                  int& server) {
    const int domain = ipv6 ? AF_INET6 : AF_INET;
    listener = net.a.socket(domain, SOCK_STREAM);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len;
    auto addr = address(ipv6, ipv6 ? TestNet::a6 : TestNet::a4, port, len);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(listener, 4) != 0)
        throw std::runtime_error("cannot listen in the test namespace");
    client = net.b.socket(domain, SOCK_STREAM);
    if (connect(client, reinterpret_cast<sockaddr*>(&addr), len) != 0)
        throw std::runtime_error("cannot connect across the test link");
    server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

}  // namespace

TcpTransfer::TcpTransfer(const TestNet& net, bool ipv6, int port, std::size_t up,
                         std::size_t down) {
    connect_pair(net, ipv6, port, listener_, client_, server_);
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    getsockname(client_, reinterpret_cast<sockaddr*>(&local), &len);
    client_port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                              : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    {
        std::jthread reader([&] { recv_all(server_, up); });
        send_all(client_, up);
    }
    {
        std::jthread reader([&] { recv_all(client_, down); });
        send_all(server_, down);
    }
}

void TcpTransfer::close() {
    for (int* fd : {&client_, &server_, &listener_})
        if (*fd >= 0) {
            ::close(*fd);
            *fd = -1;
        }
}

TcpTransfer::~TcpTransfer() { close(); }

PacedSender::PacedSender(const TestNet& net, int port, std::size_t bytes_per_s,
                         std::chrono::milliseconds length) {
    connect_pair(net, false, port, listener_, client_, server_);
    reader_ = std::jthread([fd = server_](std::stop_token st) {
        std::vector<char> buf(65536);
        while (!st.stop_requested() && recv(fd, buf.data(), buf.size(), 0) > 0) {
        }
    });
    writer_ = std::jthread([fd = client_, bytes_per_s, length](std::stop_token st) {
        const auto step = 50ms;
        const std::size_t chunk = bytes_per_s / 20;
        const auto end = std::chrono::steady_clock::now() + length;
        auto next = std::chrono::steady_clock::now();
        std::vector<char> data(chunk, 'y');
        while (!st.stop_requested() && std::chrono::steady_clock::now() < end) {
            send(fd, data.data(), data.size(), MSG_NOSIGNAL);
            next += step;
            std::this_thread::sleep_until(next);
        }
    });
}

PacedSender::~PacedSender() {
    writer_.request_stop();
    if (writer_.joinable()) writer_.join();
    if (client_ >= 0) ::shutdown(client_, SHUT_RDWR);
    if (server_ >= 0) ::shutdown(server_, SHUT_RDWR);
    reader_.request_stop();
    if (reader_.joinable()) reader_.join();
    for (int fd : {client_, server_, listener_})
        if (fd >= 0) ::close(fd);
}

}  // namespace flowtop::test
