#include "flowtop/netns/all_netns.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <unordered_set>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/system.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::netns {

struct AllNetnsWatcher::Watched {
    std::uint64_t inode = 0;
    std::string label;
    int missing = 0;
    std::unique_ptr<NamespaceSource> source;
};

AllNetnsWatcher::AllNetnsWatcher(AllNetnsConfig config)
    : config_(std::move(config)), scanner_(config_.roots) {}

AllNetnsWatcher::~AllNetnsWatcher() = default;

void AllNetnsWatcher::note(const std::string& text) {
    std::lock_guard lock(notes_mutex_);
    // Labels come from cgroup paths, which container runtimes and users name.
    if (notes_.size() < 100) notes_.push_back(sanitize(text));
}

std::vector<std::string> AllNetnsWatcher::take_notes() {
    std::lock_guard lock(notes_mutex_);
    return std::exchange(notes_, {});
}

void AllNetnsWatcher::restore() noexcept {
    for (auto& w : watched_) w->source->restore();
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
    try {
        // Everything that belongs to the namespace is opened from inside it: the sysctl files,
        // the netlink sockets, its users' sockets.
        ScopedNetns inside(fd.get());
        w->source = std::make_unique<NamespaceSource>(collector, w->label, config_.users);
    } catch (const std::exception& e) {
        note("network namespace " + entry.label + " is not watched: " + e.what());
        refused_.insert(entry.inode);  // not retried every scan, nor told again
        return;
    }
    for (const auto& text : w->source->notes()) note(entry.label + ": " + text);
    watched_.push_back(std::move(w));
}

void AllNetnsWatcher::update_sources(table::Collector& collector) {
    // Every tick: a setting turned off under flowtop is reported off at once, and told.
    bool settings_changed = false;
    for (auto& w : watched_) {
        settings_changed = w->source->guard().check() || settings_changed;
        for (const auto& n : w->source->guard().take_notes()) note(w->label + ": " + n);
    }
    if (settings_changed) tell_kernel_settings(collector);
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
            w.reset();  // leaves the collector and the users, puts the settings back
        }
    }
    std::erase(watched_, nullptr);
    std::erase_if(refused_, [&](std::uint64_t inode) { return !present.contains(inode); });

    for (const auto& e : found) {
        const bool known = std::any_of(watched_.begin(), watched_.end(),
                                       [&](const auto& w) { return w->inode == e.inode; });
        if (!known && !refused_.contains(e.inode)) add(collector, e);
    }
    tell_kernel_settings(collector);
}

void AllNetnsWatcher::tell_kernel_settings(table::Collector& collector) {
    bool acct = !watched_.empty(), timestamps = !watched_.empty();
    for (const auto& w : watched_) {
        acct = acct && w->source->guard().is_on(ct::k_acct_sysctl);
        timestamps = timestamps && w->source->guard().is_on(ct::k_timestamp_sysctl);
    }
    collector.set_kernel_settings(acct, timestamps);
}

}  // namespace flowtop::netns
