#pragma once
// Finds every network namespace on the host the way `ip netns` and lsns do: the names bound
// under /run/netns and the namespaces of running processes (/proc/PID/ns/net), one entry per
// namespace inode.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowtop::netns {

struct NamespaceEntry {
    std::uint64_t inode = 0;
    // The `ip netns` name; else "host" for flowtop's own namespace; else the container or
    // systemd unit of a process in it; else "net:[INODE]". Unique within one scan.
    std::string label;
    std::string path;  // a file that opens it: /run/netns/NAME or /proc/PID/ns/net
};

struct ScanRoots {
    std::string run_netns = "/run/netns";
    std::string proc = "/proc";
};

class NamespaceScanner {
  public:
    explicit NamespaceScanner(ScanRoots roots = {});
    // Never throws: unreadable entries (a process that just exited) are skipped.
    std::vector<NamespaceEntry> scan();

  private:
    ScanRoots roots_;
    std::uint64_t own_inode_ = 0;
    // A process's container costs a read of its cgroup file: once per namespace.
    std::unordered_map<std::uint64_t, std::string> process_labels_;
};

}  // namespace flowtop::netns
