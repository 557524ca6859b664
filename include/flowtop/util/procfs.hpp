#pragma once
// Generic readers of what /proc and the system databases say about a process, shared by the
// process attributor (enrich) and the namespace scanner (netns).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flowtop {

// Reads a small /proc (or /sys) file whole, at most `limit` bytes; empty when it cannot be read.
std::string read_small_file(const std::string& path, std::size_t limit = std::size_t{64} * 1024);

// The container or unit named by the contents of /proc/PID/cgroup (cgroup v1 or v2): Docker
// and Podman container ids (12 hex digits, as `docker ps` shows them), else the innermost
// systemd unit (.service/.scope), else empty.
std::string container_of_cgroup(std::string_view cgroup_file);

// User name for a uid (getpwuid_r), or the number as text.
std::string user_name(std::uint32_t uid);

}  // namespace flowtop
