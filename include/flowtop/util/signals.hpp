#pragma once
#include <csignal>
// Every way out of flowtop must put back what it changed. Every signal whose default action
// ends the process is handled, in two kinds:
//  - exit signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGPWR,
//    SIGVTALRM, SIGPROF, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGIO and the real-time signals) only set
//    a flag and wake the main loop through a self-pipe; the loop unwinds normally and RAII
//    restores everything. A second exit signal while unwinding restores at once and exits, so a
//    stuck shutdown never wins. One ignored when flowtop starts (nohup) stays ignored, and one
//    that someone else handles when flowtop starts (a fuzzer's timeout alarm, a debugger) stays
//    theirs: their handler decides whether it ends the process.
//  - fatal signals (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSYS, SIGTRAP) write the saved
//    bytes to descriptors opened in advance, call the registered terminal-restore hook, give a
//    handler installed before flowtop's (a sanitizer's) its turn, then re-raise with the default
//    action so the exit status tells the truth. They run on an alternate signal stack, so a
//    stack overflow of the main thread restores too.
// Handlers touch only async-signal-safe calls and data prepared before they can run.
#include <cstddef>
#include <stop_token>
#include <thread>
#include <utility>

namespace flowtop::signals {

// The real-time signal privileges.cpp sends each thread to drop its own capabilities: neither
// blocked in threads nor handled as a way out.
inline int thread_call_signal() noexcept { return SIGRTMIN + 4; }

// A prepared write: on a fatal signal, `len` bytes of `data` go to offset 0 of `fd`.
// Returns a slot to release later, or -1 when the table is full.
int register_restore_write(int fd, const char* data, std::size_t len) noexcept;
void release_restore_write(int slot) noexcept;

// Performs every registered write now (signal-safe). Used by handlers and by tests.
void run_restore_writes() noexcept;

// A hook the terminal code sets while it owns the screen; it must be async-signal-safe.
using RestoreHook = void (*)() noexcept;
void set_terminal_restore(RestoreHook hook) noexcept;
// A hook the guardian sets: asks it to put the settings back now and waits for its answer
// (async-signal-safe). True when it answered: the registered writes are then skipped (the
// guardian follows the settings ledger, they cannot); false, and they run.
using CrashRestoreHook = bool (*)() noexcept;
void set_crash_restore(CrashRestoreHook hook) noexcept;

// A read-only mapping of a file that someone may truncate while flowtop reads it (an mmdb
// copied over in place). A read past the file's new end would end flowtop with SIGBUS; for a
// watched mapping the handler maps zero pages over the rest of it instead, marks it faulted
// and lets the reader go on. The owner checks mapping_faulted() and stops trusting what it
// read. watch_mapping returns a slot (or -1 when the table is full: then SIGBUS stays fatal);
// unwatch it before unmapping.
int watch_mapping(const void* start, std::size_t length) noexcept;
void unwatch_mapping(int slot) noexcept;
bool mapping_faulted(int slot) noexcept;

// Installs the handlers for the process, and (once) the calling thread's alternate signal
// stack. Safe to call more than once: each call puts back a handler something replaced since
// (SIGHUP's reload handler in service mode counts as flowtop's), chaining a replaced
// fatal-signal handler behind flowtop's.
void install_handlers();

// An alternate signal stack for the calling thread, for its lifetime: a stack overflow on it
// still runs the crash handler (and so the restore). install_handlers() gives the main thread
// one for good; a thread that may recurse deeply (the writer) holds one of these.
class AlternateStack {
  public:
    AlternateStack() noexcept;
    ~AlternateStack();
    AlternateStack(const AlternateStack&) = delete;
    AlternateStack& operator=(const AlternateStack&) = delete;

  private:
    void* memory_ = nullptr;
    std::size_t size_ = 0;
};

// Every thread flowtop starts: a std::jthread whose body runs with an AlternateStack, so a
// stack overflow on a worker (enrichment, exporters, the alert hook's runner, the writer)
// still runs the crash handler and the restore, as on the main thread.
template <typename F>
std::jthread crash_safe_thread(F&& body) {
    return std::jthread([body = std::forward<F>(body)](std::stop_token stop) mutable {
        AlternateStack stack;
        body(std::move(stop));
    });
}

// Exit signals belong to the main thread, whose loop polls the self-pipe: main blocks them
// before it starts threads (which inherit the mask), then unblocks them for itself.
void block_exit_signals() noexcept;
void unblock_exit_signals() noexcept;

// The descriptor that becomes readable when an exit signal arrived.
int wakeup_fd() noexcept;

// The exit signal that arrived, or 0.
int pending_exit_signal() noexcept;

// After cleanup: ends the process the way the pending signal would have (re-raised with the
// default action). Returns only when no signal is pending.
void reraise_pending() noexcept;

// Service mode (--daemon): SIGHUP no longer ends flowtop; it is counted and wakes the main
// loop, which reopens log files. Call after install_handlers().
void set_hangup_reloads();
// How many SIGHUPs arrived since the last call.
unsigned take_hangups() noexcept;

// Simulates the arrival of an exit signal (for tests and for internal shutdown requests).
void request_exit(int signo) noexcept;

}  // namespace flowtop::signals
