#pragma once
// --all-netns: one conntrack source per network namespace on the host, added as namespaces
// appear and removed when they go. Each is a NamespaceSource (its guard, conntrack sockets and
// users' state, opened inside it), the same composition as flowtop's own namespace.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "flowtop/netns/namespace_scan.hpp"
#include "flowtop/netns/namespace_source.hpp"
#include "flowtop/table/collector.hpp"

namespace flowtop::netns {

struct AllNetnsConfig {
    // Told of every namespace added and removed (the process attributor).
    std::vector<NamespaceUser*> users;
    ScanRoots roots{};
    std::chrono::milliseconds rescan{1000};
    // A namespace missing from this many scans in a row is let go (its flows end).
    int missing_scans = 2;
};

class AllNetnsWatcher : public table::SourceWatcher {
  public:
    explicit AllNetnsWatcher(AllNetnsConfig config);
    // Puts back every namespace's settings.
    ~AllNetnsWatcher() override;
    AllNetnsWatcher(const AllNetnsWatcher&) = delete;
    AllNetnsWatcher& operator=(const AllNetnsWatcher&) = delete;

    // Writer thread: scans (at most every `rescan`), adds new namespaces, drops vanished ones.
    void update_sources(table::Collector& collector) override;

    // What the user should hear about (settings that stay off, namespaces that cannot be
    // watched), each once.
    std::vector<std::string> take_notes();
    // Puts back every watched namespace's settings now, once the writer has stopped.
    void restore() noexcept;

  private:
    struct Watched;
    void add(table::Collector& collector, const NamespaceEntry& entry);
    void note(const std::string& text);
    void tell_kernel_settings(table::Collector& collector);

    AllNetnsConfig config_;
    NamespaceScanner scanner_;
    std::vector<std::unique_ptr<Watched>> watched_;
    std::unordered_set<std::uint64_t> refused_;  // inodes that could not be watched
    std::chrono::steady_clock::time_point last_scan_{};
    std::mutex notes_mutex_;
    std::vector<std::string> notes_;
};

}  // namespace flowtop::netns
