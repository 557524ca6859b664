#include "flowtop/util/sysctl_guard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "flowtop/util/guardian.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop {

SysctlGuard::SysctlGuard(const std::vector<std::string>& names, const std::string& root,
                         const std::optional<std::string>& ledger_dir) {
    signals::install_handlers();
    // A fake /proc/sys must never share claims with the real one's flowtops.
    ledger_dir_ = ledger_dir.value_or(root == "/proc/sys" ? k_ledger_dir : "");
    inode_ = netns_inode("/proc/thread-self/ns/net");
    for (const auto& name : names) {
        SysctlState st;
        st.name = name;
        std::string rel = name;
        std::replace(rel.begin(), rel.end(), '.', '/');
        const std::string path = root + "/" + rel;

        UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
        const int open_err = errno;
        if (!fd) {
            UniqueFd ro(open(path.c_str(), O_RDONLY | O_CLOEXEC));
            if (!ro) {
                warnings_.push_back(name + " is not available (" + std::strerror(open_err) +
                                    "); flowtop runs without it");
            } else {
                st.found = read_setting(ro.get());
                st.on = setting_is_on(st.found);
                if (!st.on)
                    warnings_.push_back(name + " is off and cannot be changed (" +
                                        std::strerror(open_err) + "); flowtop runs without it");
            }
            states_.push_back(st);
            fds_.push_back(std::move(ro));
            continue;
        }
        LedgerSetting setting;
        setting.name = name;
        setting.fd = fd.get();
        settings_.push_back(std::move(setting));
        states_.push_back(st);
        fds_.push_back(std::move(fd));
    }
    if (settings_.empty()) return;
    if (!ledger_dir_.empty()) {
        LedgerHolder h = ledger_holder(ledger_dir_);
        if (!h.note.empty()) warnings_.push_back(h.note);
        holder_ = h.name;
        if (holder_.empty()) ledger_dir_.clear();
    }
    ledger_.emplace(ledger_dir_, inode_, holder_);
    ledger_->join(settings_, warnings_);
    for (const auto& s : settings_) {
        auto st = std::find_if(states_.begin(), states_.end(),
                               [&](const SysctlState& x) { return x.name == s.name; });
        st->found = s.found;
        st->on = s.on;
        st->changed = s.claimed;
    }
    if (guardian::active()) guardian::hold(ledger_dir_, ledger_->token(), inode_, settings_);
    // Without an answering guardian, the fatal-signal handlers write the values back themselves
    // (without the ledger: they can only make system calls).
    for (const auto& s : settings_) {
        if (!s.claimed) continue;
        restore_bytes_.push_back(s.found + "\n");
        const auto& bytes = restore_bytes_.back();
        const int slot = signals::register_restore_write(s.fd, bytes.data(), bytes.size());
        if (slot >= 0) slots_.push_back(slot);
    }
}

SysctlGuard::~SysctlGuard() { restore(); }

void SysctlGuard::restore() noexcept {
    if (left_ || !ledger_) return;
    left_ = true;
    for (int slot : slots_) signals::release_restore_write(slot);
    slots_.clear();
    try {
        ledger_->leave(settings_, notes_);
    } catch (...) {
    }
    guardian::released(inode_);
    for (auto& st : states_)
        if (st.changed) {
            st.on = false;
            st.changed = false;
        }
}

bool SysctlGuard::check() {
    bool changed = false;
    for (std::size_t i = 0; i < states_.size(); ++i) {
        auto& st = states_[i];
        if (!fds_[i] || left_) continue;
        const std::string now = read_setting(fds_[i].get());
        const bool on = setting_is_on(now);
        if (on == st.on) continue;
        changed = true;
        st.on = on;
        if (on) continue;  // someone turned it on: true, and still not flowtop's to put back
        if (!st.changed_by_other)
            notes_.push_back(
                st.name +
                " was turned off by someone else while flowtop ran: "
                "flowtop leaves it off (new flows get no " +
                (st.name.find("acct") != std::string::npos ? "byte counters" : "timestamps") + ")");
        st.changed_by_other = true;
        if (!st.changed) continue;
        // No longer flowtop's: nobody puts it back, neither this flowtop, another, nor a
        // guardian.
        st.changed = false;
        if (ledger_) ledger_->disown(st.name);
        guardian::disown(inode_, st.name);
        for (auto& s : settings_)
            if (s.name == st.name) s.claimed = false;
        for (std::size_t k = 0; k < slots_.size(); ++k) signals::release_restore_write(slots_[k]);
        slots_.clear();
        // The other claimed settings keep their signal-path writes.
        restore_bytes_.clear();
        for (const auto& s : settings_) {
            if (!s.claimed) continue;
            restore_bytes_.push_back(s.found + "\n");
            const auto& bytes = restore_bytes_.back();
            const int slot = signals::register_restore_write(s.fd, bytes.data(), bytes.size());
            if (slot >= 0) slots_.push_back(slot);
        }
    }
    return changed;
}

std::vector<std::string> SysctlGuard::take_notes() { return std::exchange(notes_, {}); }

bool SysctlGuard::is_on(const std::string& name) const noexcept {
    for (const auto& st : states_)
        if (st.name == name) return st.on;
    return false;
}

}  // namespace flowtop
