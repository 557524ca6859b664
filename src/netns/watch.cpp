#include "flowtop/netns/watch.hpp"

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop::netns {

Watch::Watch(table::Collector& collector, WatchConfig config) {
    if (!config.all_netns) {
        own_ = std::make_unique<NamespaceSource>(collector, "", config.users);
        own_notes_ = own_->notes();
        collector.set_kernel_settings(own_->guard().is_on(ct::k_acct_sysctl),
                                      own_->guard().is_on(ct::k_timestamp_sysctl));
        return;
    }
    // Fails here, with the clear message, when conntrack netlink is missing altogether.
    ct::open_kernel_conntrack({.subscribe_events = false});
    // Each namespace holds a few sockets and settings files open.
    raise_open_file_limit();
    all_ = std::make_unique<AllNetnsWatcher>(AllNetnsConfig{.users = std::move(config.users)});
    collector.set_source_watcher(all_.get());
}

Watch::~Watch() = default;

std::vector<std::string> Watch::take_notes() {
    if (all_) return all_->take_notes();
    return std::exchange(own_notes_, {});
}

void Watch::restore() noexcept {
    if (own_) own_->restore();
    if (all_) all_->restore();
}

std::vector<std::string> Watch::settings_turned_on() const {
    std::vector<std::string> names;
    if (own_)
        for (const auto& state : own_->guard().states())
            if (state.changed) names.push_back(state.name);
    return names;
}

}  // namespace flowtop::netns
