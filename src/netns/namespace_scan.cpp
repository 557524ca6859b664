#include "flowtop/netns/namespace_scan.hpp"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <unordered_set>

#include "flowtop/util/handle.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/procfs.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop::netns {
namespace {

using DirPtr = CPtr<DIR, closedir>;

}  // namespace

NamespaceScanner::NamespaceScanner(ScanRoots roots)
    : roots_(std::move(roots)), own_inode_(netns_link_inode(roots_.proc + "/self/ns/net")) {}

std::vector<NamespaceEntry> NamespaceScanner::scan() {
    std::vector<NamespaceEntry> found;
    std::unordered_map<std::uint64_t, std::size_t> by_inode;
    auto add = [&](std::uint64_t inode, std::string label, std::string path) {
        if (!inode || by_inode.contains(inode)) return;
        by_inode.emplace(inode, found.size());
        found.push_back({inode, std::move(label), std::move(path)});
    };

    // Names first: a namespace that has one is known by it.
    std::vector<std::string> names;
    if (DirPtr dir{os::opendir(roots_.run_netns.c_str())}) {
        while (const dirent* e = readdir(dir.get()))
            if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
        const std::string path = roots_.run_netns + "/" + name;
        add(netns_inode(path), name, path);
    }

    std::vector<std::uint32_t> pids;
    if (DirPtr dir{os::opendir(roots_.proc.c_str())}) {
        while (const dirent* e = readdir(dir.get())) {
            char* end = nullptr;
            const auto pid = std::strtoul(e->d_name, &end, 10);
            if (pid > 0 && *end == '\0') pids.push_back(static_cast<std::uint32_t>(pid));
        }
    }
    std::sort(pids.begin(), pids.end());  // the oldest process names an unnamed namespace
    std::unordered_set<std::uint64_t> seen;
    for (auto pid : pids) {
        const std::string dir = roots_.proc + "/" + std::to_string(pid);
        const std::uint64_t inode = netns_link_inode(dir + "/ns/net");
        if (!inode) continue;
        seen.insert(inode);
        if (by_inode.contains(inode)) continue;
        std::string label;
        if (inode == own_inode_) {
            label = "host";
        } else if (auto it = process_labels_.find(inode); it != process_labels_.end()) {
            label = it->second;
        } else {
            label = container_of_cgroup(read_small_file(dir + "/cgroup"));
            if (label.empty()) label = "net:[" + std::to_string(inode) + "]";
            process_labels_.emplace(inode, label);
        }
        add(inode, std::move(label), dir + "/ns/net");
    }
    if (own_inode_ && !by_inode.contains(own_inode_))
        add(own_inode_, "host", roots_.proc + "/self/ns/net");
    std::erase_if(process_labels_, [&](const auto& kv) { return !seen.contains(kv.first); });

    // Two namespaces of one container or unit: the inode tells them apart.
    std::unordered_map<std::string, int> uses;
    for (const auto& e : found) ++uses[e.label];
    for (auto& e : found)
        if (uses[e.label] > 1) e.label += "/net:[" + std::to_string(e.inode) + "]";
    return found;
}

}  // namespace flowtop::netns
