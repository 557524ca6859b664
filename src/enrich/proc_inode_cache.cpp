#include "flowtop/enrich/proc_inode_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <memory>

#include "flowtop/util/handle.hpp"
#include "flowtop/util/os.hpp"

namespace flowtop::enrich {
namespace {

using DirPtr = CPtr<DIR, closedir>;

std::uint32_t parse_u32(std::string_view s) noexcept {
    std::uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return 0;
    return v;
}

}  // namespace

std::uint32_t socket_inode_of(std::string_view link) noexcept {
    constexpr std::string_view prefix = "socket:[";
    if (link.size() < prefix.size() + 2 || !link.starts_with(prefix) || link.back() != ']')
        return 0;
    return parse_u32(link.substr(prefix.size(), link.size() - prefix.size() - 1));
}

InodeCache::InodeCache(std::string proc_root) : proc_root_(std::move(proc_root)) {}

bool InodeCache::still_holds(std::uint32_t inode, const Where& w) {
    std::string path = proc_root_ + "/" + std::to_string(w.pid) + "/fd/" + std::to_string(w.fd);
    char link[64];
    ++stats_.proc_reads;
    ssize_t n = os::readlink(path.c_str(), link, sizeof(link));
    return n > 0 && socket_inode_of(std::string_view(link, static_cast<std::size_t>(n))) == inode;
}

void InodeCache::scan_pid(std::uint32_t pid) {
    auto& mine = by_pid_[pid];
    // Sockets it no longer holds keep it as their last owner: an exiting process (a zombie
    // until reaped) has an empty fd directory while its flows are still being looked up.
    auto now = std::chrono::steady_clock::now();
    for (auto inode : mine) {
        auto it = by_inode_.find(inode);
        if (it != by_inode_.end() && it->second.pid == pid) {
            by_inode_.erase(it);
            gone_[inode] = Gone{pid, now};
        }
    }
    mine.clear();
    std::string dir = proc_root_ + "/" + std::to_string(pid) + "/fd";
    ++stats_.proc_reads;
    ++stats_.pids_scanned;
    DirPtr d(os::opendir(dir.c_str()));
    if (!d) return;  // exited, or not ours to read
    int dfd = dirfd(d.get());
    while (dirent* e = readdir(d.get())) {
        std::uint32_t fd = parse_u32(e->d_name);
        if (!fd && e->d_name[0] != '0') continue;
        char link[64];
        ++stats_.proc_reads;
        ssize_t n = readlinkat(dfd, e->d_name, link, sizeof(link));
        if (n <= 0) continue;
        std::uint32_t inode = socket_inode_of(std::string_view(link, static_cast<std::size_t>(n)));
        if (!inode) continue;
        by_inode_[inode] = Where{pid, fd};
        mine.push_back(inode);
    }
    if (mine.empty()) by_pid_.erase(pid);
}

std::vector<std::uint32_t> InodeCache::list_pids() {
    std::vector<std::uint32_t> pids;
    ++stats_.proc_reads;
    DirPtr d(os::opendir(proc_root_.c_str()));
    if (!d) return pids;
    while (dirent* e = readdir(d.get()))
        if (std::uint32_t pid = parse_u32(e->d_name)) pids.push_back(pid);
    return pids;
}

void InodeCache::forget(std::uint32_t pid) {
    auto now = std::chrono::steady_clock::now();
    if (auto it = by_pid_.find(pid); it != by_pid_.end()) {
        for (auto inode : it->second) {
            auto in = by_inode_.find(inode);
            if (in != by_inode_.end() && in->second.pid == pid) {
                by_inode_.erase(in);
                gone_[inode] = Gone{pid, now};
            }
        }
        by_pid_.erase(it);
    }
    known_pids_.erase(pid);
}

std::vector<std::uint32_t> InodeCache::scan_new_pids() {
    auto now = list_pids();
    std::unordered_set<std::uint32_t> current(now.begin(), now.end());
    std::vector<std::uint32_t> exited;
    for (auto pid : known_pids_)
        if (!current.contains(pid)) exited.push_back(pid);
    for (auto pid : exited) forget(pid);
    auto t = std::chrono::steady_clock::now();
    std::erase_if(gone_, [&](const auto& kv) { return t - kv.second.when > k_gone_keep; });
    std::vector<std::uint32_t> with_sockets;
    for (auto it = young_.begin(); it != young_.end();) {
        std::uint32_t pid = it->first;
        if (!known_pids_.contains(pid) || t - it->second > k_young) {
            it = young_.erase(it);
            continue;
        }
        scan_pid(pid);
        if (by_pid_.contains(pid)) {
            with_sockets.push_back(pid);
            it = young_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto pid : now)
        if (known_pids_.insert(pid).second) {
            scan_pid(pid);
            if (by_pid_.contains(pid))
                with_sockets.push_back(pid);
            else if (!first_listing_)
                young_.emplace(pid, t);
        }
    first_listing_ = false;
    return with_sockets;
}

void InodeCache::resolve(std::span<const std::uint32_t> inodes, std::span<std::uint32_t> pids) {
    std::size_t missing = 0;
    auto lookup = [&](bool verify) {
        missing = 0;
        for (std::size_t i = 0; i < inodes.size(); ++i) {
            if (pids[i]) continue;
            auto it = by_inode_.find(inodes[i]);
            if (it != by_inode_.end() && (!verify || still_holds(inodes[i], it->second)))
                pids[i] = it->second.pid;
            else if (auto g = gone_.find(inodes[i]); !verify && g != gone_.end())
                pids[i] = g->second.pid;  // its last owner exited: still the answer
            else
                ++missing;
        }
    };
    for (auto& p : pids) p = 0;
    lookup(true);
    stats_.hits += inodes.size() - missing;
    if (!missing) return;
    stats_.misses += missing;

    // New processes first: a new flow usually comes from a process started since the last look.
    scan_new_pids();
    std::vector<std::uint32_t> now(known_pids_.begin(), known_pids_.end());
    lookup(false);
    if (!missing) return;

    // Then processes that already own sockets (servers accept new ones), then the rest.
    std::vector<std::uint32_t> owners;
    for (const auto& [pid, socks] : by_pid_) owners.push_back(pid);
    for (auto pid : owners) {
        scan_pid(pid);
        lookup(false);
        if (!missing) return;
    }
    auto t = std::chrono::steady_clock::now();
    if (last_full_scan_ != std::chrono::steady_clock::time_point{} &&
        t - last_full_scan_ < full_scan_interval_)
        return;
    last_full_scan_ = t;
    for (auto pid : now) {
        if (by_pid_.contains(pid)) continue;
        scan_pid(pid);
        lookup(false);
        if (!missing) return;
    }
}

}  // namespace flowtop::enrich
