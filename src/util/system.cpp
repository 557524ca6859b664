#include "flowtop/util/system.hpp"

#include <fcntl.h>
#include <sched.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>

#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop {

bool has_net_admin() noexcept {
    constexpr int k_cap_net_admin = 12;
    try {
        std::ifstream status("/proc/self/status");
        std::string line;
        while (std::getline(status, line)) {
            if (line.rfind("CapEff:", 0) != 0) continue;
            std::uint64_t caps = std::stoull(line.substr(7), nullptr, 16);
            return (caps >> k_cap_net_admin) & 1;
        }
    } catch (...) {
    }
    return false;
}

void require_net_admin() {
    if (!has_net_admin())
        throw Error(
            "needs root (CAP_NET_ADMIN) to read the kernel's connection tracking table "
            "and to turn on byte accounting: run it with sudo, e.g. 'sudo flowtop'");
}

void enter_netns(const std::string& name) {
    std::string path = name.find('/') == std::string::npos ? "/run/netns/" + name : name;
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            throw Error("network namespace '" + name + "' does not exist (see 'ip netns list')");
        throw Error(errno_message("cannot open network namespace '" + name + "'", errno));
    }
    if (setns(fd.get(), CLONE_NEWNET) != 0)
        throw Error(errno_message("cannot enter network namespace '" + name + "'", errno));
}

}  // namespace flowtop
