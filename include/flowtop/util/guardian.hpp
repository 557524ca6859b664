#pragma once
// The guardian: a small process forked at start, before any thread exists, that puts back what
// flowtop changed when flowtop itself cannot (SIGKILL, the OOM killer, a crash that cannot run
// handlers). It waits on a socket whose other end only flowtop holds; flowtop tells it, as it
// goes, each setting it claimed (with the setting's file descriptor, opened inside its
// namespace, so namespaces added later by --all-netns reach it too), each one it put back
// itself, and the terminal the live view took. End of file without the closing word means
// flowtop died: the guardian follows the settings ledger (settings_ledger.hpp) exactly as
// flowtop would have, puts the terminal back, says so on stderr, and exits. It holds only
// CAP_NET_ADMIN (what writing the settings needs), ignores the terminal's and job-control
// signals (its own session), and never outlives the restore. A fatal signal in flowtop asks it
// to restore at once and waits for its answer, so the exit status still tells the truth.
#include <termios.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowtop/util/settings_ledger.hpp"

namespace flowtop::guardian {

// Forks the guardian. Call once, while the process has one thread. False (with a note for the
// user) when it cannot; flowtop then restores by itself, on every way out but SIGKILL.
bool start(std::string& note);
// Is a guardian watching (started and still answering)?
bool active() noexcept;

// The claimed settings of one namespace, after NamespaceLedger::join (their descriptors are
// duplicated into the guardian). holder: this process's ledger holder (empty: not shared).
void hold(const std::string& ledger_dir, const std::string& holder, std::uint64_t ns_inode,
          const std::vector<LedgerSetting>& settings) noexcept;
// Someone else changed the setting: the guardian must not put it back.
void disown(std::uint64_t ns_inode, const std::string& name) noexcept;
// flowtop put the namespace's settings back (or left them to another flowtop) itself.
void released(std::uint64_t ns_inode) noexcept;

// The live view took the terminal: termios as found, and the bytes that leave the alternate
// screen, show the cursor and stop mouse reporting (prepared in advance, at most 128 bytes).
void arm_terminal(int in_fd, int out_fd, const termios& saved,
                  std::string_view restore_bytes) noexcept;
void disarm_terminal() noexcept;

// Everything is put back: the guardian ends (waited for, briefly).
void finish() noexcept;

}  // namespace flowtop::guardian
