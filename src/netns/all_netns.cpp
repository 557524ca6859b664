#include "flowtop/netns/all_netns.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <unordered_set>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/enrich/proc_attributor.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/sysctl_guard.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop::netns {

struct AllNetnsWatcher::Watched {
    std::uint64_t inode = 0;
    std::string label;
    std::uint16_t source = 0;
    int missing = 0;
    // Declared in the order they are made; destroyed in reverse: the attributor's worker
    // stops first, the settings are put back last.
    std::unique_ptr<SysctlGuard> guard;
    std::unique_ptr<ct::ConntrackIo> io;
    std::unique_ptr<enrich::ProcAttributor> proc;
};

AllNetnsWatcher::AllNetnsWatcher(AllNetnsConfig config)
    : config_(std::move(config)), scanner_(config_.roots) {}

AllNetnsWatcher::~AllNetnsWatcher() = default;

void AllNetnsWatcher::note(std::string text) {
    std::lock_guard lock(notes_mutex_);
    if (notes_.size() < 100) notes_.push_back(std::move(text));
}

std::vector<std::string> AllNetnsWatcher::take_notes() {
    std::lock_guard lock(notes_mutex_);
    return std::exchange(notes_, {});
}

void AllNetnsWatcher::add(table::Collector& collector, const NamespaceEntry& entry) {
    UniqueFd fd;
    try {
        fd = open_netns(entry.path);
    } catch (const Error&) {
        return;  // its last process exited since the scan: nothing to watch
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || st.st_ino != entry.inode) return;  // pid reused meanwhile

    auto w = std::make_unique<Watched>();
    w->inode = entry.inode;
    w->label = entry.label;
    bool added = false;
    try {
        // Everything that belongs to the namespace is opened from inside it: the sysctl files,
        // the netlink sockets, and the attributor's worker thread (sock_diag, addresses).
        ScopedNetns inside(fd.get());
        w->guard = std::make_unique<SysctlGuard>(ct::guarded_sysctls());
        for (const auto& warning : w->guard->warnings()) note(entry.label + ": " + warning);
        w->io = ct::open_kernel_conntrack();
        w->source = collector.add_source(*w->io, w->label);
        added = true;
        if (config_.attribute_processes) {
            try {
                w->proc = std::make_unique<enrich::ProcAttributor>(
                    enrich::ProcAttributorConfig{.source = w->source});
                collector.add_hook(w->proc.get());
            } catch (const Error& e) {
                note(entry.label + ": no process attribution: " + e.what());
            }
        }
    } catch (const std::exception& e) {
        note("network namespace " + entry.label + " is not watched: " + e.what());
        refused_.insert(entry.inode);  // not retried every scan, nor told again
        if (added) collector.remove_source(w->source);
        return;  // w's guard restores on the way out
    }
    watched_.push_back(std::move(w));
}

void AllNetnsWatcher::remove(table::Collector& collector, const Watched& w) {
    // Then destroying w puts the namespace's settings back: it may still live, held by
    // something flowtop cannot see.
    if (w.proc) collector.remove_hook(w.proc.get());
    collector.remove_source(w.source);
}

void AllNetnsWatcher::update_sources(table::Collector& collector) {
    const auto now = std::chrono::steady_clock::now();
    if (last_scan_ != std::chrono::steady_clock::time_point{} && now - last_scan_ < config_.rescan)
        return;
    last_scan_ = now;
    const auto found = scanner_.scan();

    std::unordered_set<std::uint64_t> present;
    for (const auto& e : found) present.insert(e.inode);
    for (auto& w : watched_) {
        if (present.contains(w->inode)) {
            w->missing = 0;
        } else if (++w->missing >= config_.missing_scans) {
            remove(collector, *w);
            w.reset();
        }
    }
    std::erase(watched_, nullptr);
    std::erase_if(refused_, [&](std::uint64_t inode) { return !present.contains(inode); });

    for (const auto& e : found) {
        const bool known = std::any_of(watched_.begin(), watched_.end(),
                                       [&](const auto& w) { return w->inode == e.inode; });
        if (!known && !refused_.contains(e.inode)) add(collector, e);
    }

    bool acct = !watched_.empty(), timestamps = !watched_.empty();
    for (const auto& w : watched_) {
        acct = acct && w->guard->is_on(ct::k_acct_sysctl);
        timestamps = timestamps && w->guard->is_on(ct::k_timestamp_sysctl);
    }
    collector.set_kernel_settings(acct, timestamps);
}

}  // namespace flowtop::netns
