#pragma once
// The namespaces flowtop watches, one composition for every mode: its own network namespace
// (after --netns, the one it entered), or with --all-netns every namespace on the host, each a
// NamespaceSource of the collector.
#include <memory>
#include <string>
#include <vector>

#include "flowtop/netns/all_netns.hpp"
#include "flowtop/netns/namespace_source.hpp"
#include "flowtop/table/collector.hpp"

namespace flowtop::netns {

struct WatchConfig {
    bool all_netns = false;
    std::vector<NamespaceUser*> users;  // told of each namespace (the process attributor)
};

class Watch {
  public:
    // One namespace: opened now, in the calling thread's namespace; throws flowtop::Error with
    // the user's message when its conntrack cannot be opened. --all-netns: checks that conntrack
    // netlink exists at all, then the collector's watcher adds the namespaces as it runs.
    Watch(table::Collector& collector, WatchConfig config);
    // Puts back every watched namespace's settings. The collector and the users must outlive it.
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

    // What the user should hear about (settings that stay off, namespaces or attribution that
    // could not be had), each once.
    std::vector<std::string> take_notes();
    // The settings of the one watched namespace that were off and are on while flowtop runs
    // (dotted names; empty with --all-netns), for --daemon's note about sysctl.d.
    std::vector<std::string> settings_turned_on() const;
    // Puts the settings back now, once the writer has stopped (the destructor would too).
    void restore() noexcept;
    // The one namespace's settings guard (nullptr with --all-netns, whose watcher checks them).
    SysctlGuard* own_guard() noexcept { return own_ ? &own_->guard() : nullptr; }

  private:
    std::unique_ptr<NamespaceSource> own_;
    std::vector<std::string> own_notes_;
    std::unique_ptr<AllNetnsWatcher> all_;
};

}  // namespace flowtop::netns
