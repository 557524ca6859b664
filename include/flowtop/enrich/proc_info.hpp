#pragma once
// What /proc says about one process, for attribution: name, command line, user, container or
// systemd unit, network namespace.
#include <cstdint>
#include <string>

namespace flowtop::enrich {

struct ProcInfo {
    std::uint32_t pid = 0;
    std::uint32_t uid = 0;
    std::string comm;
    std::string cmdline;      // arguments joined by spaces
    std::string user;         // name from the password database, or the number
    std::string container;    // "docker:<id>", "podman:<id>", a systemd unit, or empty
    std::uint64_t netns = 0;  // inode of /proc/PID/ns/net; 0 when unreadable
};

// Reads /proc/PID/{comm,cmdline,status,cgroup,ns/net}; false when the process is gone. The
// generic readers it uses (cgroup, user names) live in util/procfs.hpp.
bool read_proc_info(const std::string& proc_root, std::uint32_t pid, ProcInfo& out);

}  // namespace flowtop::enrich
