#pragma once
// Socket inode -> PID from /proc/PID/fd links, kept incrementally: a miss scans the processes
// not seen before, then (only if still missing) rescans known ones, socket owners first. There
// is never a scan of every process on every tick: with no new flows there is no /proc read.
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace flowtop::enrich {

struct InodeCacheStats {
    std::uint64_t proc_reads = 0;    // opendir/readlink/open calls on /proc
    std::uint64_t pids_scanned = 0;  // /proc/PID/fd directories walked
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
};

class InodeCache {
  public:
    explicit InodeCache(std::string proc_root = "/proc");

    // Resolves each inode to the PID holding it (0 when none is found), writing into pids.
    void resolve(std::span<const std::uint32_t> inodes, std::span<std::uint32_t> pids);
    // Walks the fds of processes started since the last look; returns those holding sockets.
    // Called as soon as a new flow shows up, so a client that exits right after sending is
    // caught while it still holds its socket.
    std::vector<std::uint32_t> scan_new_pids();
    // Moves what is known about a process that exited to the recently-gone list: its sockets
    // keep their owner for a while (TIME_WAIT, late lookups).
    void forget(std::uint32_t pid);
    // Processes seen in the last scan of the /proc directory.
    bool alive(std::uint32_t pid) const { return known_pids_.contains(pid); }

    const InodeCacheStats& stats() const noexcept { return stats_; }
    const std::string& proc_root() const noexcept { return proc_root_; }

  private:
    struct Where {
        std::uint32_t pid;
        std::uint32_t fd;
    };
    bool still_holds(std::uint32_t inode, const Where& w);
    void scan_pid(std::uint32_t pid);
    std::vector<std::uint32_t> list_pids();

    std::string proc_root_;
    std::unordered_map<std::uint32_t, Where> by_inode_;
    std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> by_pid_;  // pid -> its sockets
    std::unordered_set<std::uint32_t> known_pids_;
    struct Gone {
        std::uint32_t pid;
        std::chrono::steady_clock::time_point when;
    };
    std::unordered_map<std::uint32_t, Gone> gone_;  // inode -> last owner, kept k_gone_keep
    static constexpr std::chrono::seconds k_gone_keep{120};
    // Processes first seen holding no socket within k_young: rescanned with the new ones, since
    // a program just started (python, curl) opens its socket a few milliseconds after exec.
    std::unordered_map<std::uint32_t, std::chrono::steady_clock::time_point> young_;
    static constexpr std::chrono::seconds k_young{5};
    bool first_listing_ = true;  // processes found at start are not young
    InodeCacheStats stats_;
    // A full rescan for a miss happens at most this often: an inode whose process has gone
    // would otherwise cost a walk of every process each time it is asked for.
    std::chrono::steady_clock::time_point last_full_scan_{};
    std::chrono::milliseconds full_scan_interval_{2000};

  public:
    void set_full_scan_interval(std::chrono::milliseconds ms) { full_scan_interval_ = ms; }
};

// Parses "socket:[12345]" (a /proc/PID/fd link target); 0 when it is not a socket.
std::uint32_t socket_inode_of(std::string_view link) noexcept;

}  // namespace flowtop::enrich
