#include "flowtop/util/signals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>

namespace flowtop::signals {
namespace {

// Signal handlers can only reach global state; it is confined to this file.
struct RestoreWrite {
    std::atomic<int> fd{-1};
    char data[32] = {};
    std::size_t len = 0;
};

// Two settings for each watched namespace (--all-netns), so room for many namespaces.
constexpr std::size_t k_max_restore_writes = 2048;
std::array<RestoreWrite, k_max_restore_writes> g_writes;
std::atomic<RestoreHook> g_terminal_restore{nullptr};
std::atomic<int> g_pending{0};
int g_pipe[2] = {-1, -1};
std::atomic<bool> g_installed{false};

constexpr int k_exit_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
constexpr int k_fatal_signals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};

void restore_everything() noexcept {
    run_restore_writes();
    if (auto hook = g_terminal_restore.load()) hook();
}

void on_exit_signal(int signo) {
    int saved_errno = errno;
    int expected = 0;
    if (!g_pending.compare_exchange_strong(expected, signo)) {
        // Second signal: the orderly shutdown is taking too long; restore now and leave.
        restore_everything();
        _exit(128 + signo);
    }
    char byte = 1;
    [[maybe_unused]] auto n = write(g_pipe[1], &byte, 1);
    errno = saved_errno;
}

void on_fatal_signal(int signo) {
    restore_everything();
    signal(signo, SIG_DFL);
    raise(signo);
    // Still here: as pid 1 of a container the kernel ignores a raised default action.
    _exit(128 + signo);
}

}  // namespace

int register_restore_write(int fd, const char* data, std::size_t len) noexcept {
    if (len > sizeof(RestoreWrite::data)) return -1;
    for (std::size_t i = 0; i < g_writes.size(); ++i) {
        auto& w = g_writes[i];
        if (w.fd.load() != -1) continue;
        std::memcpy(w.data, data, len);
        w.len = len;
        w.fd.store(fd);  // published last: a handler sees either nothing or the whole entry
        return static_cast<int>(i);
    }
    return -1;
}

void release_restore_write(int slot) noexcept {
    if (slot >= 0 && static_cast<std::size_t>(slot) < g_writes.size()) g_writes[slot].fd.store(-1);
}

void run_restore_writes() noexcept {
    for (auto& w : g_writes) {
        int fd = w.fd.load();
        if (fd >= 0) [[maybe_unused]] auto n = pwrite(fd, w.data, w.len, 0);
    }
}

void set_terminal_restore(RestoreHook hook) noexcept { g_terminal_restore.store(hook); }

void install_handlers() {
    if (g_installed.exchange(true)) return;
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_pipe[0] = g_pipe[1] = -1;
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_exit_signal;
    for (int s : k_exit_signals) sigaction(s, &sa, nullptr);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (int s : k_fatal_signals) sigaction(s, &sa, nullptr);
}

int wakeup_fd() noexcept { return g_pipe[0]; }

int pending_exit_signal() noexcept { return g_pending.load(); }

void request_exit(int signo) noexcept {
    int expected = 0;
    g_pending.compare_exchange_strong(expected, signo);
    char byte = 1;
    [[maybe_unused]] auto n = write(g_pipe[1], &byte, 1);
}

void reraise_pending() noexcept {
    int signo = g_pending.load();
    if (signo == 0) return;
    signal(signo, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    raise(signo);
    _exit(128 + signo);
}

}  // namespace flowtop::signals
