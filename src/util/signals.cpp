#include "flowtop/util/signals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "flowtop/util/os.hpp"

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
std::atomic<CrashRestoreHook> g_crash_restore{nullptr};
std::atomic<int> g_pending{0};
int g_pipe[2] = {-1, -1};
std::atomic<bool> g_installed{false};
std::atomic<unsigned> g_hangups{0};

// Every signal whose default action ends the process (signal(7)), in two kinds. Asynchronous
// ones, sent by someone (kill, a terminal, a limit): a flag and an orderly shutdown. SIGXFSZ
// and SIGXCPU are here too: handled, the write that passed `ulimit -f` fails with EFBIG and the
// batch writer stops on it; a CPU soft limit leaves time before the hard one (SIGKILL).
constexpr int k_exit_signals[] = {SIGINT,  SIGTERM,   SIGHUP,  SIGQUIT, SIGPIPE,
                                  SIGUSR1, SIGUSR2,   SIGALRM, SIGPWR,  SIGVTALRM,
                                  SIGPROF, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGIO};
// Synchronous ones, a fault of this very thread (or sent to look like one): nothing may be left
// to unwind, so restore from the handler itself. SIGSYS is a seccomp kill, SIGTRAP a breakpoint.
constexpr int k_fatal_signals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSYS, SIGTRAP};

// The actions in place before ours (a sanitizer's, a debugger's), indexed by signal number:
// a fatal signal restores first and then gives the earlier handler its turn, so ASan still
// prints its report.
struct sigaction g_previous[NSIG] = {};
bool g_has_previous[NSIG] = {};

// Read-only file mappings whose file may shrink under us (mmdb files): a read past the new end
// raises SIGBUS. The handler puts zero pages over the rest of the mapping, marks it and
// returns, so the reader finishes on zeros and its owner drops the mapping.
struct WatchedMapping {
    std::atomic<std::uintptr_t> start{0};
    std::atomic<std::size_t> length{0};
    std::atomic<bool> faulted{false};
};
constexpr std::size_t k_max_mappings = 64;
std::array<WatchedMapping, k_max_mappings> g_mappings;

bool patch_watched_mapping(const siginfo_t* info) noexcept {
    if (!info || info->si_code != BUS_ADRERR) return false;
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    for (auto& m : g_mappings) {
        const std::uintptr_t start = m.start.load();
        const std::size_t length = m.length.load();
        if (start == 0 || addr < start || addr >= start + length) continue;
        const std::uintptr_t from = addr & ~(page - 1);
        // NOLINTNEXTLINE(performance-no-int-to-ptr): the page address of the fault, from siginfo
        void* fixed = mmap(reinterpret_cast<void*>(from), start + length - from, PROT_READ,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (fixed == MAP_FAILED) return false;
        m.faulted.store(true);
        return true;
    }
    return false;
}

void restore_everything() noexcept {
    const auto crash = g_crash_restore.load();
    if (!crash || !crash()) run_restore_writes();
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

void on_hangup(int) {
    int saved_errno = errno;
    g_hangups.fetch_add(1);
    char byte = 1;
    [[maybe_unused]] auto n = write(g_pipe[1], &byte, 1);
    errno = saved_errno;
}

void on_fatal_signal(int signo, siginfo_t* info, void* context) {
    if (signo == SIGBUS && patch_watched_mapping(info)) return;
    restore_everything();
    if (signo > 0 && signo < NSIG && g_has_previous[signo]) {
        const struct sigaction& prev = g_previous[signo];
        if (prev.sa_flags & SA_SIGINFO) {
            if (prev.sa_sigaction) prev.sa_sigaction(signo, info, context);
        } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) {
            prev.sa_handler(signo);
        }
    }
    signal(signo, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    raise(signo);
    // Still here: as pid 1 of a container the kernel ignores a raised default action.
    _exit(128 + signo);
}

// A stack overflow faults on the guard page below the stack: the SIGSEGV handler can only run
// on a stack of its own. The size covers the restore (a few pwrite calls and the terminal's
// write) many times over. Returns the mapping (null when the thread has one already, or no
// memory is left: then handlers still run on anything but an overflow).
void* install_alternate_stack(std::size_t& size) noexcept {
    stack_t current{};
    if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE))
        return nullptr;  // someone (ASan) gave this thread one already
    long min = sysconf(_SC_SIGSTKSZ);
    size = std::max<std::size_t>(std::size_t{64} * 1024,
                                 min > 0 ? static_cast<std::size_t>(min) * 4 : 0);
    void* mem =
        mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    stack_t st{};
    st.ss_sp = mem;
    st.ss_size = size;
    st.ss_flags = 0;
    if (sigaltstack(&st, nullptr) != 0) {
        munmap(mem, size);
        return nullptr;
    }
    return mem;
}

sigset_t exit_signal_set() noexcept {
    sigset_t set;
    sigemptyset(&set);
    for (int s : k_exit_signals) sigaddset(&set, s);
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s)
        if (s != thread_call_signal()) sigaddset(&set, s);
    return set;
}

// Exit signals that were not at their default action when flowtop first installed its
// handlers: ignored (nohup, a shell's background job), so they cannot end flowtop, or handled by
// someone who was here first (a fuzzer's timeout alarm, a debugger, an LD_PRELOAD), whose
// handler decides what the signal means. Either way they stay as the process's owner set them.
bool g_left_alone[NSIG] = {};

void install_exit_handler(int signo, bool first_install) noexcept {
    struct sigaction old {};
    if (sigaction(signo, nullptr, &old) != 0) return;
    const bool plain = !(old.sa_flags & SA_SIGINFO);
    if (plain && (old.sa_handler == on_exit_signal || old.sa_handler == on_hangup)) return;
    if (first_install) g_left_alone[signo] = !(plain && old.sa_handler == SIG_DFL);
    if (g_left_alone[signo]) return;
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_exit_signal;
    // Restarted, so that a worker's read or write never sees EINTR from a signal meant for
    // the main loop (which polls the self-pipe, and poll is never restarted anyway).
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigaction(signo, &sa, nullptr);
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
        if (fd < 0) continue;
        if (os::pwrite_full(fd, w.data, w.len, 0) != static_cast<ssize_t>(w.len)) {
            // Nothing else can be done from here: say so, where the user looks.
            static constexpr char k_failed[] =
                "flowtop: could not put a kernel setting back (see flowtop(8), SETTINGS)\n";
            [[maybe_unused]] auto n = os::write_full(STDERR_FILENO, k_failed, sizeof k_failed - 1);
        }
    }
}

void set_terminal_restore(RestoreHook hook) noexcept { g_terminal_restore.store(hook); }

void set_crash_restore(CrashRestoreHook hook) noexcept { g_crash_restore.store(hook); }

void install_handlers() {
    // What was left alone is decided once per process: a forked child (the guardian, a test's)
    // decides again, from the actions it inherited.
    static std::atomic<pid_t> decided_in{0};
    const bool first = decided_in.exchange(getpid()) != getpid();
    if (!g_installed.exchange(true)) {
        if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_pipe[0] = g_pipe[1] = -1;
        std::size_t size = 0;
        install_alternate_stack(size);  // the main thread's, kept for the life of the process
    }
    // Each call puts flowtop's handlers back where something replaced them since (a fatal
    // signal's replacement is chained behind ours).
    for (int s : k_exit_signals) install_exit_handler(s, first);
    // Real-time signals end the process by default too (glibc keeps the first two for itself
    // and SIGRTMIN starts above them).
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s)
        if (s != thread_call_signal()) install_exit_handler(s, first);
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_fatal_signal;
    for (int s : k_fatal_signals) {
        // SIGBUS stays installed after a first one: a watched mapping may fault again. The
        // fatal path resets the action itself before it re-raises.
        sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | (s == SIGBUS ? 0 : SA_RESETHAND);
        struct sigaction old {};
        if (sigaction(s, nullptr, &old) != 0) continue;
        if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == on_fatal_signal) continue;
        const bool handler = (old.sa_flags & SA_SIGINFO)
                                 ? old.sa_sigaction != nullptr
                                 : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN;
        g_has_previous[s] = false;
        if (handler) {
            g_previous[s] = old;
            g_has_previous[s] = true;
        }
        sigaction(s, &sa, nullptr);
    }
}

AlternateStack::AlternateStack() noexcept : memory_(install_alternate_stack(size_)) {}

AlternateStack::~AlternateStack() {
    if (!memory_) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(memory_, size_);
}

void block_exit_signals() noexcept {
    const sigset_t set = exit_signal_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void unblock_exit_signals() noexcept {
    const sigset_t set = exit_signal_set();
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

int watch_mapping(const void* start, std::size_t length) noexcept {
    for (std::size_t i = 0; i < g_mappings.size(); ++i) {
        auto& m = g_mappings[i];
        std::uintptr_t expected = 0;
        if (!m.start.compare_exchange_strong(expected, 1)) continue;  // claimed, not yet live
        m.faulted.store(false);
        m.length.store(length);
        m.start.store(reinterpret_cast<std::uintptr_t>(start));
        return static_cast<int>(i);
    }
    return -1;
}

void unwatch_mapping(int slot) noexcept {
    if (slot < 0 || static_cast<std::size_t>(slot) >= g_mappings.size()) return;
    g_mappings[slot].length.store(0);
    g_mappings[slot].start.store(0);
}

bool mapping_faulted(int slot) noexcept {
    return slot >= 0 && static_cast<std::size_t>(slot) < g_mappings.size() &&
           g_mappings[slot].faulted.load();
}

void set_hangup_reloads() {
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_hangup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, nullptr);
}

unsigned take_hangups() noexcept { return g_hangups.exchange(0); }

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
