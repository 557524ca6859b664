#pragma once
// Every way out of flowtop must put back what it changed. Two kinds of signals:
//  - exit signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE) only set a flag and wake the main
//    loop through a self-pipe; the loop unwinds normally and RAII restores everything. A second
//    exit signal while unwinding restores at once and exits, so a stuck shutdown never wins.
//  - fatal signals (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) write the saved bytes to
//    descriptors opened in advance, call the registered terminal-restore hook, then re-raise with
//    the default action so the exit status tells the truth.
// Handlers touch only async-signal-safe calls and data prepared before they can run.
#include <cstddef>

namespace flowtop::signals {

// A prepared write: on a fatal signal, `len` bytes of `data` go to offset 0 of `fd`.
// Returns a slot to release later, or -1 when the table is full.
int register_restore_write(int fd, const char* data, std::size_t len) noexcept;
void release_restore_write(int slot) noexcept;

// Performs every registered write now (signal-safe). Used by handlers and by tests.
void run_restore_writes() noexcept;

// A hook the terminal code sets while it owns the screen; it must be async-signal-safe.
using RestoreHook = void (*)() noexcept;
void set_terminal_restore(RestoreHook hook) noexcept;

// Installs the handlers for the process. Safe to call more than once.
void install_handlers();

// The descriptor that becomes readable when an exit signal arrived.
int wakeup_fd() noexcept;

// The exit signal that arrived, or 0.
int pending_exit_signal() noexcept;

// After cleanup: ends the process the way the pending signal would have (re-raised with the
// default action). Returns only when no signal is pending.
void reraise_pending() noexcept;

// Simulates the arrival of an exit signal (for tests and for internal shutdown requests).
void request_exit(int signo) noexcept;

}  // namespace flowtop::signals
