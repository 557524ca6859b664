#pragma once
// A /proc tree made of real files and links, for the readers that take a /proc root (the inode
// cache, process info, the namespace scanner): each process gets comm, cmdline, cgroup, its
// network namespace link, fd 0 on /dev/null and socket links for the fds given.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace flowtop::test {

class FakeProc {
  public:
    static constexpr std::uint64_t k_host_netns = 4026531840;

    explicit FakeProc(std::filesystem::path root) : root_(std::move(root)) {
        std::filesystem::create_directories(root_);
    }

    void add_process(const std::string& pid, const std::string& comm,
                     const std::vector<std::pair<int, std::uint32_t>>& sockets = {},
                     const std::string& cgroup = "0::/\n", std::uint64_t netns = k_host_netns) {
        const auto dir = root_ / pid;
        std::filesystem::create_directories(dir / "fd");
        std::filesystem::create_directories(dir / "ns");
        std::ofstream(dir / "comm") << comm << "\n";
        std::ofstream(dir / "cmdline")
            << comm << std::string(1, '\0') << "--flag" << std::string(1, '\0');
        std::ofstream(dir / "cgroup") << cgroup;
        std::filesystem::create_symlink("net:[" + std::to_string(netns) + "]", dir / "ns" / "net");
        std::filesystem::create_symlink("/dev/null", dir / "fd" / "0");
        for (auto [fd, inode] : sockets) add_socket(pid, fd, inode);
    }

    void add_socket(const std::string& pid, int fd, std::uint32_t inode) {
        std::filesystem::create_symlink("socket:[" + std::to_string(inode) + "]",
                                        root_ / pid / "fd" / std::to_string(fd));
    }

    void remove_process(const std::string& pid) { std::filesystem::remove_all(root_ / pid); }

    const std::filesystem::path& root() const noexcept { return root_; }

  private:
    std::filesystem::path root_;
};

}  // namespace flowtop::test
