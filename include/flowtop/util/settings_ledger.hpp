#pragma once
// Who turned which kernel setting on, shared by every flowtop on the host, so that several
// flowtops in one namespace (or one flowtop and an administrator) never undo each other.
//
// The protocol (one file per network namespace, /run/flowtop/netns-INODE):
//   claim NAME FOUND SET     a flowtop found NAME at FOUND and wrote SET; the last flowtop of
//                            the namespace to leave writes FOUND back, if NAME is still SET
//   holder HOLDER.N          a flowtop (reference N of process HOLDER) sharing the claims
// Every change happens under flock(LOCK_EX) of that file. A holder is alive while its file
// /run/flowtop/holder-HOLDER stays locked by its flowtop: a holder whose lock can be taken
// died without leaving and is dropped (its guardian, if it had one, then leaves for it). Liveness
// by lock, not by pid, so it holds across PID namespaces and pid reuse.
//   - A setting that is off: turned on and claimed.
//   - On and claimed (by a live or a dead flowtop) and still at the claimed value: shared; a
//     dead one's claim is adopted, so its change is put back when the last one leaves.
//   - On and not claimed (an administrator's): left alone, never written.
//   - Claimed but changed by someone else since: the claim is dropped, nothing is written.
// Removing the file gives every claim up: the settings then stay as they are.
// When the directory cannot be used (not root, no /run), the same rules apply to this process
// alone: flowtop then puts a setting back only if it still holds the value flowtop wrote.
#include <cstdint>
#include <string>
#include <vector>

namespace flowtop {

struct LedgerSetting {
    std::string name;      // dotted sysctl name
    int fd = -1;           // the setting, opened read-write inside its namespace (not owned)
    std::string found;     // the value before any flowtop changed it (join fills it in)
    std::string set;       // the value flowtop wrote ("1"), when claimed
    bool claimed = false;  // a flowtop turned it on: the last one to leave puts `found` back
    bool on = false;       // on after join
};

// The shared directory: /run/flowtop.
inline constexpr const char* k_ledger_dir = "/run/flowtop";

class NamespaceLedger {
  public:
    // dir empty: not shared (this process alone). holder: this process's holder name, to which
    // the ledger adds ".N", a reference of its own; or a whole reference (the guardian's
    // copy, token()).
    NamespaceLedger(std::string dir, std::uint64_t ns_inode, std::string holder);

    // Turns on what is off and claims it, shares or adopts flowtop claims, leaves an
    // administrator's settings alone. Warnings are written for the user.
    void join(std::vector<LedgerSetting>& settings, std::vector<std::string>& warnings);
    // This process stops holding the namespace. When no live holder remains, writes back each
    // claim still at its claimed value; `messages` tells the ones left as someone else set
    // them. Claims (settings[i].claimed) are the fallback when the file is not shared.
    void leave(std::vector<LedgerSetting>& settings, std::vector<std::string>& messages) noexcept;
    // Someone else changed `name`: nobody puts it back.
    void disown(const std::string& name) noexcept;

    const std::string& path() const noexcept { return path_; }
    const std::string& token() const noexcept { return holder_; }

  private:
    std::string dir_;
    std::string path_;  // empty when not shared
    std::string holder_;
    unsigned mode_ = 0644;
};

// This process's holder in `dir` (created, and locked, on first use): its name, or empty when
// the directory cannot be used; `note` then says why (once per directory).
struct LedgerHolder {
    std::string name;
    int fd = -1;  // the locked holder file (kept open for the process's life)
    std::string note;
};
LedgerHolder ledger_holder(const std::string& dir);
// Removes a holder's file (the guardian, for the flowtop that died).
void remove_ledger_holder(const std::string& dir, const std::string& name) noexcept;
// Removes this process's holder files (at the end, after every namespace was left).
void remove_ledger_holders() noexcept;

// "0" and "" are off; anything else is on.
bool setting_is_on(const std::string& value) noexcept;
// The value at offset 0 of fd, trimmed; empty when unreadable.
std::string read_setting(int fd) noexcept;
bool write_setting(int fd, const std::string& value) noexcept;

}  // namespace flowtop
