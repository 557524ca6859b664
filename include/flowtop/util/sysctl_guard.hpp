#pragma once
// Turns on kernel settings flowtop needs while it runs and puts back exactly what it found, on
// every way out (see signals.hpp for the signal paths, guardian.hpp for SIGKILL). Conntrack
// sysctls are per network namespace: a guard acts on the namespace the thread was in when it
// opened them. Several flowtops share a namespace's settings through the ledger
// (settings_ledger.hpp): only the last one to leave puts back what a flowtop changed, and only
// if it still holds the value flowtop wrote; an administrator's settings are never written.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flowtop/util/handle.hpp"
#include "flowtop/util/settings_ledger.hpp"

namespace flowtop {

struct SysctlState {
    std::string name;      // dotted, e.g. "net.netfilter.nf_conntrack_acct"
    std::string found;     // the value before flowtop (any flowtop) changed it; empty: unreadable
    bool changed = false;  // a flowtop turned it on: put back when the last one leaves
    bool on = false;       // is the setting on now
    bool changed_by_other = false;  // turned off under flowtop while it ran
};

class SysctlGuard {
  public:
    // names are dotted sysctl names; root is where /proc/sys lives (tests point it elsewhere).
    // ledger_dir: where flowtops share what they changed; by default /run/flowtop for the real
    // /proc/sys and nothing (this process alone) for any other root.
    explicit SysctlGuard(const std::vector<std::string>& names,
                         const std::string& root = "/proc/sys",
                         const std::optional<std::string>& ledger_dir = std::nullopt);
    ~SysctlGuard();
    SysctlGuard(const SysctlGuard&) = delete;
    SysctlGuard& operator=(const SysctlGuard&) = delete;

    // Leaves the namespace: puts back what is flowtop's to put back. Safe to call twice.
    void restore() noexcept;

    // Reads the settings again (the writer thread, every tick): one turned off under flowtop is
    // reported off from now on, warned about once (take_notes), and never turned back on or
    // put back. True when a setting's on/off changed.
    bool check();
    // Warnings since the last call: settings changed by someone else, and those left as
    // someone else set them at the end.
    std::vector<std::string> take_notes();

    const std::vector<SysctlState>& states() const noexcept { return states_; }
    bool is_on(const std::string& name) const noexcept;
    // One line per setting that could not be read or turned on, written for the user.
    const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  private:
    std::vector<SysctlState> states_;
    std::vector<UniqueFd> fds_;            // parallel to states_; invalid when unreadable
    std::vector<LedgerSetting> settings_;  // the writable ones
    std::vector<int> slots_;               // signal-path restore writes (no guardian)
    std::vector<std::string> restore_bytes_;
    std::vector<std::string> warnings_;
    std::vector<std::string> notes_;
    std::uint64_t inode_ = 0;
    std::string ledger_dir_, holder_;
    std::optional<NamespaceLedger> ledger_;
    bool left_ = false;
};

}  // namespace flowtop
