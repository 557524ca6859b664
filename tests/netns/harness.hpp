#pragma once
// Test hosts for the privileged tests: network namespaces with a veth pair between them,
// documentation addresses, nft rules that make conntrack track, and flowtop run inside one of
// them. Everything made here is removed by destructors, so a failing assertion cleans up too.
#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace flowtop::test {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// Runs a shell command; returns its exit status and fills `out` with its stdout.
int sh(const std::string& command, std::string* out = nullptr);
// Runs a shell command and fails the current test if it fails.
std::string must(const std::string& command);
// Runs a shell command and returns its stdout, whatever its exit status.
std::string capture(const std::string& command);

// A uniquely named network namespace, removed (with whatever runs in it) on destruction.
class Namespace {
  public:
    explicit Namespace(const std::string& role);
    ~Namespace();
    Namespace(const Namespace&) = delete;
    Namespace& operator=(const Namespace&) = delete;

    const std::string& name() const { return name_; }
    // "ip netns exec NAME " + command
    std::string exec(const std::string& command) const;
    std::string sysctl(const std::string& key) const;
    void set_sysctl(const std::string& key, const std::string& value) const;
    // A socket created inside this namespace (it stays there, whichever thread uses it).
    int socket(int domain, int type) const;

  private:
    std::string name_;
};

// Two hosts on one link: a = 198.51.100.1 / 2001:db8::1, b = 198.51.100.2 / 2001:db8::2.
// Conntrack is active in both (nft rules with `ct state`).
class TestNet {
  public:
    TestNet();
    Namespace a{"a"};
    Namespace b{"b"};
    static constexpr const char* a4 = "198.51.100.1";
    static constexpr const char* b4 = "198.51.100.2";
    static constexpr const char* a6 = "2001:db8::1";
    static constexpr const char* b6 = "2001:db8::2";
};

// A client and a server on one veth pair: client v0 = 198.51.100.1 / 2001:db8:1::1, server
// v1 = 198.51.100.2 / 2001:db8:1::2. Conntrack is active in the client (an output rule).
class NetnsPair {
  public:
    NetnsPair();
    ~NetnsPair();
    NetnsPair(const NetnsPair&) = delete;
    NetnsPair& operator=(const NetnsPair&) = delete;
    std::string in_client(const std::string& command) const { return client_ns.exec(command); }
    std::string in_server(const std::string& command) const { return server_ns.exec(command); }
    // /etc/netns/<client>/resolv.conf: `ip netns exec` bind-mounts it over /etc/resolv.conf.
    void set_resolver(const std::string& nameserver);

    Namespace client_ns{"pc"};
    Namespace server_ns{"ps"};
    const std::string& client = client_ns.name();
    const std::string& server = server_ns.name();

  private:
    bool made_etc_ = false;
};

// Three hosts in a row, the router forwarding both families between two links:
//   client c0 192.0.2.1 / 2001:db8:1::1
//   router r0 192.0.2.254 / 2001:db8:1::ff, r1 198.51.100.254 / 2001:db8:2::ff
//   server s0 198.51.100.1 / 2001:db8:2::1
// Conntrack is active in all three (input, output and forward rules with `ct state`).
class RouterNet {
  public:
    RouterNet();
    Namespace client{"rc"};
    Namespace router{"rr"};
    Namespace server{"rs"};
};

// One frame of `flowtop -o json`.
struct Frame {
    Json frame;
    std::vector<Json> flows;
    std::vector<Json> alerts;  // alert lines printed since the previous frame (before this one)
    std::vector<std::string> alert_lines;  // the same, as flowtop wrote them
    // Flows matching proto and destination port (0: any port).
    std::vector<Json> find(const std::string& proto, int dport = 0) const;
};

// Where flowtop --all-netns may look (scripts/netns-sandbox): a private mount namespace whose
// /run/netns holds only these test namespaces, and a PID namespace with its own /proc. The
// host's namespaces, and so their settings, stay out of its reach.
struct Sandbox {
    std::vector<const Namespace*> visible;
};

// flowtop running inside a namespace (its own pid: signals reach it, not a wrapper). Run as
// another user (uid != 0) it runs from a copy in a directory of its own under /tmp: the build
// tree may lie in a home directory others cannot enter (Debian makes homes mode 700).
// The live view (or any program) in a tmux session of its own on the default server, killed
// with the object. Names are unique per process and object, so tests never share one.
class TmuxSession {
  public:
    explicit TmuxSession(const std::string& prefix);
    ~TmuxSession();
    TmuxSession(const TmuxSession&) = delete;
    TmuxSession& operator=(const TmuxSession&) = delete;

    // Runs `command`, a shell command line quoted for double quotes, in a width x height pane
    // (ending what the session ran before).
    void start(const std::string& command, int width, int height) const;
    const std::string& name() const { return name_; }
    std::string screen() const;
    void keys(const std::string& keys) const;
    // Polls the screen until `text` appears (or is gone) or the timeout passes.
    bool wait_for(const std::string& text, std::chrono::milliseconds timeout = 8s) const;
    bool wait_gone(const std::string& text, std::chrono::milliseconds timeout = 8s) const;
    // The first screen line holding `text`, or "".
    std::string line_with(const std::string& text) const;

  private:
    std::string name_;
};

// A copy of flowtop that any user may execute, in a fresh directory of mode 755 under /tmp
// (the checkout may live in a home that other users cannot enter: Debian 12 makes homes 700).
// It runs from anywhere: the project's libraries are linked in statically. Removed with it.
class ExecutableCopy {
  public:
    ExecutableCopy();
    ~ExecutableCopy();
    ExecutableCopy(const ExecutableCopy&) = delete;
    ExecutableCopy& operator=(const ExecutableCopy&) = delete;
    const std::string& path() const { return path_; }
    const std::string& dir() const { return dir_; }

  private:
    std::string dir_, path_;
};

class Flowtop {
  public:
    Flowtop(const Namespace& ns, const std::vector<std::string>& args, uid_t uid = 0,
            const Sandbox* sandbox = nullptr);
    ~Flowtop();
    Flowtop(const Flowtop&) = delete;
    Flowtop& operator=(const Flowtop&) = delete;

    // flowtop's own pid (inside a sandbox: the host's number for it, once it has started).
    pid_t pid() const;
    // The next whole frame, or nullopt on timeout or end of output.
    std::optional<Frame> next_frame(std::chrono::milliseconds timeout = 5s);
    // Every remaining frame until the process ends (bounded by timeout).
    std::vector<Frame> all_frames(std::chrono::milliseconds timeout = 15s);
    void signal(int signo) const;
    // Waits for the process; returns the raw wait status, or -1 on timeout (then kills it).
    int wait(std::chrono::milliseconds timeout = 10s);
    // What it wrote to stderr so far (after wait()).
    std::string stderr_text();

  private:
    bool read_line(std::string& line, std::chrono::steady_clock::time_point deadline);
    pid_t pid_ = -1;  // the child: flowtop, or the sandbox's unshare
    bool sandboxed_ = false;
    int out_ = -1;
    int err_ = -1;
    std::string buffer_;
    std::string err_text_;
    bool eof_ = false;
    bool reaped_ = false;
    std::optional<ExecutableCopy> copy_;  // for a user other than root
};

// A TCP connection from b to a: the client sends `up` bytes, the server answers `down` bytes,
// and both stay open (idle) until close() or destruction.
class TcpTransfer {
  public:
    TcpTransfer(const TestNet& net, bool ipv6, int port, std::size_t up, std::size_t down);
    ~TcpTransfer();
    void close();
    int client_port() const { return client_port_; }

  private:
    int listener_ = -1, server_ = -1, client_ = -1;
    int client_port_ = 0;
};

// Sends `bytes` from b to a over TCP at about `bytes_per_s`, in the background.
class PacedSender {
  public:
    PacedSender(const TestNet& net, int port, std::size_t bytes_per_s,
                std::chrono::milliseconds length);
    ~PacedSender();

  private:
    int listener_ = -1, server_ = -1, client_ = -1;
    std::jthread reader_, writer_;
};

}  // namespace flowtop::test
