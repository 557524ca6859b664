#include "flowtop/util/guardian.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "flowtop/util/error.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/privileges.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop::guardian {
namespace {

enum class Kind : std::uint32_t {
    hold,
    disown,
    released,
    terminal,
    terminal_off,
    restore_now,
    done
};

// One datagram of a SOCK_SEQPACKET pair: fixed size, so neither side parses lengths.
struct Message {
    Kind kind{};
    std::uint64_t inode = 0;
    char dir[128] = {};
    char holder[48] = {};
    char name[64] = {};
    char found[24] = {};
    char set[24] = {};
    termios saved{};
    std::uint32_t bytes_len = 0;
    char bytes[128] = {};
};

void copy_text(char* to, std::size_t size, std::string_view from) noexcept {
    const std::size_t n = std::min(size - 1, from.size());
    std::memcpy(to, from.data(), n);
    to[n] = '\0';
}

std::atomic<int> g_socket{-1};
pid_t g_pid = -1;

bool send_message(const Message& m, const int* fds = nullptr, int nfds = 0) noexcept {
    const int sock = g_socket.load();
    if (sock < 0) return false;
    iovec iov{const_cast<Message*>(&m), sizeof m};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
    if (nfds > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    for (;;) {
        if (sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof m)) return true;
        if (errno != EINTR) return false;
    }
}

// ---- the guardian process ----

struct HeldNamespace {
    std::uint64_t inode = 0;
    std::string dir, holder;
    std::vector<LedgerSetting> settings;  // fds owned here
};

struct GuardianState {
    std::vector<HeldNamespace> namespaces;
    int term_in = -1, term_out = -1;
    termios saved{};
    std::string term_bytes;
};

void close_settings(HeldNamespace& ns) {
    for (auto& s : ns.settings)
        if (s.fd >= 0) close(s.fd);
    ns.settings.clear();
}

void put_terminal_back(GuardianState& g) {
    if (g.term_out >= 0) [[maybe_unused]]
        auto n = write(g.term_out, g.term_bytes.data(), g.term_bytes.size());
    if (g.term_in >= 0) tcsetattr(g.term_in, TCSANOW, &g.saved);
    for (int fd : {g.term_in, g.term_out})
        if (fd >= 0) close(fd);
    g.term_in = g.term_out = -1;
}

void say(const std::string& line) {
    const std::string text = "flowtop: " + line + "\n";
    [[maybe_unused]] auto n = write(STDERR_FILENO, text.data(), text.size());
}

// flowtop is gone (or dying) without having left its namespaces: leave them as it would have.
void restore_settings(GuardianState& g, pid_t flowtop, bool tell) {
    std::vector<std::string> messages;
    bool any = false;
    for (auto& ns : g.namespaces) {
        if (ns.settings.empty()) continue;
        any = true;
        NamespaceLedger(ns.dir, ns.inode, ns.holder).leave(ns.settings, messages);
        close_settings(ns);
        remove_ledger_holder(ns.dir, ns.holder.substr(0, ns.holder.find('.')));
    }
    g.namespaces.clear();
    if (any && tell)
        say("flowtop (pid " + std::to_string(flowtop) +
            ") ended without putting back the kernel settings it changed; its guardian did");
    for (const auto& m : messages) say("guardian: " + m);
}

HeldNamespace& namespace_of(GuardianState& g, std::uint64_t inode) {
    for (auto& ns : g.namespaces)
        if (ns.inode == inode) return ns;
    HeldNamespace ns;
    ns.inode = inode;
    g.namespaces.push_back(std::move(ns));
    return g.namespaces.back();
}

[[noreturn]] void guardian_main(int sock, pid_t flowtop) {
    // Its own session: Ctrl-C, a hang-up, job control and the shell's kill of the job reach
    // flowtop, not this one, which must outlive flowtop to be of any use.
    setsid();
    prctl(PR_SET_NAME, "flowtop-guard", 0, 0, 0);
    for (int s : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1,
                  SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR, SIGWINCH})
        signal(s, SIG_IGN);
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) signal(s, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Nothing of flowtop's but the socket and stderr: a pipe flowtop writes to must see its
    // end when flowtop ends, not when the guardian does.
    const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
    }
    if (sock != 3) {
        dup2(sock, 3);
        sock = 3;
    }
    close_range(4, ~0U, 0);
    // --all-netns sends two descriptors per namespace: room for as many as flowtop watches.
    raise_open_file_limit();
    privileges::drop_this_thread(std::uint64_t{1} << CAP_NET_ADMIN);

    GuardianState g;
    for (;;) {
        Message m;
        iovec iov{&m, sizeof m};
        alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = os::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        int fds[2] = {-1, -1};
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                std::memcpy(fds, CMSG_DATA(c),
                            std::min<std::size_t>(sizeof fds, c->cmsg_len - CMSG_LEN(0)));
        if (n != static_cast<ssize_t>(sizeof m)) {
            // End of file (or a broken socket) without "done": flowtop died.
            put_terminal_back(g);
            restore_settings(g, flowtop, true);
            _exit(0);
        }
        switch (m.kind) {
            case Kind::hold: {
                auto& ns = namespace_of(g, m.inode);
                ns.dir = m.dir;
                ns.holder = m.holder;
                LedgerSetting s;
                s.name = m.name;
                s.found = m.found;
                s.set = m.set;
                s.claimed = s.on = true;
                s.fd = fds[0];
                ns.settings.push_back(std::move(s));
                break;
            }
            case Kind::disown:
                for (auto& ns : g.namespaces)
                    if (ns.inode == m.inode)
                        std::erase_if(ns.settings, [&](LedgerSetting& s) {
                            if (s.name != m.name) return false;
                            close(s.fd);
                            return true;
                        });
                break;
            case Kind::released:
                for (auto& ns : g.namespaces)
                    if (ns.inode == m.inode) close_settings(ns);
                std::erase_if(g.namespaces,
                              [&](const HeldNamespace& ns) { return ns.inode == m.inode; });
                break;
            case Kind::terminal:
                for (int fd : {g.term_in, g.term_out})
                    if (fd >= 0) close(fd);
                g.term_in = fds[0];
                g.term_out = fds[1] >= 0 ? fds[1] : -1;
                g.saved = m.saved;
                g.term_bytes.assign(m.bytes, std::min<std::size_t>(m.bytes_len, sizeof m.bytes));
                break;
            case Kind::terminal_off:
                for (int fd : {g.term_in, g.term_out})
                    if (fd >= 0) close(fd);
                g.term_in = g.term_out = -1;
                break;
            case Kind::restore_now: {
                // A fatal signal in flowtop: its handler puts the terminal back and waits for
                // this answer before it dies.
                restore_settings(g, flowtop, false);  // its exit status tells
                for (int fd : {g.term_in, g.term_out})
                    if (fd >= 0) close(fd);
                g.term_in = g.term_out = -1;
                char ok = 1;
                [[maybe_unused]] auto w = os::send(sock, &ok, 1, MSG_NOSIGNAL);
                break;
            }
            case Kind::done:
                _exit(0);
        }
    }
}

// flowtop's fatal-signal path (async-signal-safe): ask, then wait for the answer.
bool restore_now_from_signal() noexcept {
    static Message m;  // zeroed at start; only the kind is set here
    m.kind = Kind::restore_now;
    const int sock = g_socket.load();
    if (sock < 0) return false;
    iovec iov{&m, sizeof m};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // A guardian killed meanwhile: flowtop's own prepared writes do it.
    if (sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof m)) return false;
    pollfd p{sock, POLLIN, 0};
    char ok = 0;
    return os::poll(&p, 1, 3000) > 0 && os::recv(sock, &ok, 1, MSG_DONTWAIT) == 1 && ok == 1;
}

}  // namespace

bool start(std::string& note) {
    if (g_socket.load() >= 0) return true;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        note = errno_message("no guardian (socketpair)", errno);
        return false;
    }
    const pid_t flowtop = getpid();
    std::fflush(nullptr);  // nothing buffered is written twice
    const pid_t pid = fork();
    if (pid < 0) {
        note = errno_message("no guardian (fork)", errno);
        close(pair[0]);
        close(pair[1]);
        return false;
    }
    if (pid == 0) {
        close(pair[0]);
        guardian_main(pair[1], flowtop);
    }
    close(pair[1]);
    g_pid = pid;
    g_socket.store(pair[0]);
    signals::set_crash_restore(restore_now_from_signal);
    return true;
}

bool active() noexcept { return g_socket.load() >= 0; }

void hold(const std::string& ledger_dir, const std::string& holder, std::uint64_t ns_inode,
          const std::vector<LedgerSetting>& settings) noexcept {
    for (const auto& s : settings) {
        if (!s.claimed || s.fd < 0) continue;
        Message m;
        m.kind = Kind::hold;
        m.inode = ns_inode;
        copy_text(m.dir, sizeof m.dir, ledger_dir);
        copy_text(m.holder, sizeof m.holder, holder);
        copy_text(m.name, sizeof m.name, s.name);
        copy_text(m.found, sizeof m.found, s.found);
        copy_text(m.set, sizeof m.set, s.set);
        send_message(m, &s.fd, 1);
    }
}

void disown(std::uint64_t ns_inode, const std::string& name) noexcept {
    Message m;
    m.kind = Kind::disown;
    m.inode = ns_inode;
    copy_text(m.name, sizeof m.name, name);
    send_message(m);
}

void released(std::uint64_t ns_inode) noexcept {
    Message m;
    m.kind = Kind::released;
    m.inode = ns_inode;
    send_message(m);
}

void arm_terminal(int in_fd, int out_fd, const termios& saved,
                  std::string_view restore_bytes) noexcept {
    Message m;
    m.kind = Kind::terminal;
    m.saved = saved;
    m.bytes_len = static_cast<std::uint32_t>(std::min(restore_bytes.size(), sizeof m.bytes));
    std::memcpy(m.bytes, restore_bytes.data(), m.bytes_len);
    const int fds[2] = {in_fd, out_fd};
    send_message(m, fds, 2);
}

void disarm_terminal() noexcept {
    Message m;
    m.kind = Kind::terminal_off;
    send_message(m);
}

void finish() noexcept {
    const int sock = g_socket.exchange(-1);
    if (sock < 0) return;
    signals::set_crash_restore(nullptr);
    Message m;
    m.kind = Kind::done;
    iovec iov{&m, sizeof m};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    [[maybe_unused]] auto n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    close(sock);
    // Gone before flowtop is: nothing of flowtop's outlives it.
    for (int waited = 0; waited < 1000; ++waited) {
        const pid_t r = waitpid(g_pid, nullptr, WNOHANG);
        if (r == g_pid || r < 0) break;
        usleep(1000);
    }
}

}  // namespace flowtop::guardian
