#pragma once
// Turns on kernel settings flowtop needs while it runs and puts back exactly what it found, on
// every way out (see signals.hpp for the signal paths). Conntrack sysctls are per network
// namespace: a guard acts on the namespace the process was in when it opened them.
#include <string>
#include <vector>

#include "flowtop/util/handle.hpp"

namespace flowtop {

struct SysctlState {
    std::string name;   // dotted, e.g. "net.netfilter.nf_conntrack_acct"
    std::string found;  // the value as read, trimmed; empty when unreadable
    bool changed = false;
    bool on = false;  // is the setting on now
};

class SysctlGuard {
public:
    // names are dotted sysctl names; root is where /proc/sys lives (tests point it elsewhere).
    explicit SysctlGuard(const std::vector<std::string>& names, std::string root = "/proc/sys");
    ~SysctlGuard();
    SysctlGuard(const SysctlGuard&) = delete;
    SysctlGuard& operator=(const SysctlGuard&) = delete;

    // Writes back the values found. Safe to call twice.
    void restore() noexcept;

    const std::vector<SysctlState>& states() const noexcept { return states_; }
    bool is_on(const std::string& name) const noexcept;
    // One line per setting that could not be read or turned on, written for the user.
    const std::vector<std::string>& warnings() const noexcept { return warnings_; }

private:
    struct Held {
        UniqueFd fd;
        std::string restore_bytes;
        int slot = -1;
    };
    std::vector<SysctlState> states_;
    std::vector<Held> held_;
    std::vector<std::string> warnings_;
};

}  // namespace flowtop
