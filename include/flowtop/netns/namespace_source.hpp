#pragma once
// One watched network namespace, composed the same way for flowtop's own namespace, --netns
// and each namespace of --all-netns: the kernel-settings guard, the conntrack sockets (a
// collector source) and the per-namespace state of its users (the process attributor's
// sock_diag socket), all opened from inside the namespace.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/table/collector.hpp"
#include "flowtop/util/sysctl_guard.hpp"

namespace flowtop::netns {

// Something that keeps state of its own in each watched namespace. Sockets stay in the
// namespace they were opened in, whichever thread uses them later, so a user opens its
// sockets in add_namespace and may serve every namespace from one worker thread.
class NamespaceUser {
  public:
    virtual ~NamespaceUser() = default;
    // Called on a thread inside the namespace whose flows carry collector source `source`,
    // on the writer thread (or before it runs). Throws flowtop::Error when it cannot serve this
    // namespace: its flows are still shown, without what this user adds (the message says so,
    // e.g. "no process attribution: ...").
    virtual void add_namespace(std::uint16_t source) = 0;
    virtual void remove_namespace(std::uint16_t source) noexcept = 0;
};

class NamespaceSource {
  public:
    // Opens everything in the calling thread's current network namespace and adds it to the
    // collector as a source labelled `label` (empty: no label, the single-namespace modes).
    // Throws flowtop::Error when conntrack cannot be opened; a user that fails is a note.
    NamespaceSource(table::Collector& collector, const std::string& label,
                    std::span<NamespaceUser* const> users);
    // Leaves the users and the collector (on the writer thread, or once it has stopped), then
    // puts the namespace's settings back.
    ~NamespaceSource();
    NamespaceSource(const NamespaceSource&) = delete;
    NamespaceSource& operator=(const NamespaceSource&) = delete;

    std::uint16_t source() const noexcept { return source_; }
    const SysctlGuard& guard() const noexcept { return *guard_; }
    SysctlGuard& guard() noexcept { return *guard_; }
    // Settings that stay off, users that could not serve it: one line each, for the user.
    const std::vector<std::string>& notes() const noexcept { return notes_; }
    // Puts the settings back now (the destructor would too).
    void restore() noexcept { guard_->restore(); }

  private:
    table::Collector& collector_;
    // Made in this order, undone in reverse: users leave first, the settings come back last.
    std::unique_ptr<SysctlGuard> guard_;
    std::unique_ptr<ct::ConntrackIo> io_;
    std::uint16_t source_ = 0;
    bool added_ = false;
    std::vector<NamespaceUser*> users_;  // those that took the namespace
    std::vector<std::string> notes_;
};

}  // namespace flowtop::netns
