#include "flowtop/util/system.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"
#include "flowtop/util/os.hpp"

namespace flowtop {

void check_standard_streams() {
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        if (fd == STDOUT_FILENO) throw Error("cannot write the output: standard output is closed");
        int null_fd = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
        if (null_fd >= 0 && null_fd != fd) {
            dup2(null_fd, fd);
            close(null_fd);
        }
    }
}

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
            "and to turn on byte accounting: run it with sudo, e.g. 'sudo flowtop', or give a "
            "copy of it that capability (setcap, see CAPABILITIES in flowtop(8))");
}

void enter_netns(const std::string& name) {
    std::string path = name.find('/') == std::string::npos ? "/run/netns/" + name : name;
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            throw Error("network namespace '" + name + "' does not exist (see 'ip netns list')");
        throw Error(errno_message("cannot open network namespace '" + name + "'", errno));
    }
    if (os::setns(fd.get(), CLONE_NEWNET) != 0)
        throw Error(errno_message("cannot enter network namespace '" + name + "'", errno));
}

void raise_open_file_limit() noexcept {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
}

void cap_malloc_arenas() noexcept {
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (std::getenv("MALLOC_ARENA_MAX") || (tunables && std::strstr(tunables, "arena_max"))) return;
    mallopt(M_ARENA_MAX, 2);
}

std::uint64_t parse_netns_link(const std::string& link) noexcept {
    constexpr std::string_view prefix = "net:[";
    if (link.size() <= prefix.size() + 1 || link.compare(0, prefix.size(), prefix) != 0 ||
        link.back() != ']')
        return 0;
    char* end = nullptr;
    const auto value = std::strtoull(link.c_str() + prefix.size(), &end, 10);
    return end == link.c_str() + link.size() - 1 ? value : 0;
}

std::uint64_t netns_link_inode(const std::string& link_path) noexcept {
    char buf[64];
    const ssize_t n = os::readlink(link_path.c_str(), buf, sizeof buf - 1);
    if (n <= 0) return 0;
    return parse_netns_link(std::string(buf, static_cast<std::size_t>(n)));
}

UniqueFd open_netns(const std::string& path) {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw Error(errno_message("cannot open network namespace " + path, errno));
    return fd;
}

std::uint64_t netns_inode(const std::string& path) noexcept {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

ScopedNetns::ScopedNetns(int netns_fd)
    : home_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (!home_) throw Error(errno_message("cannot open this thread's network namespace", errno));
    if (os::setns(netns_fd, CLONE_NEWNET) != 0)
        throw Error(errno_message("cannot enter a network namespace", errno));
}

ScopedNetns::~ScopedNetns() {
    if (setns(home_.get(), CLONE_NEWNET) == 0) return;
    // Going on in the wrong namespace would read and change another namespace's table.
    std::fputs("flowtop: cannot return to its own network namespace\n", stderr);
    std::abort();
}

}  // namespace flowtop
