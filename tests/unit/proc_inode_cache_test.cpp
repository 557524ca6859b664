// The inode cache and /proc readers on a recorded /proc tree made of real files and links.
#include "flowtop/enrich/proc_inode_cache.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fake_proc.hpp"
#include "flowtop/enrich/proc_info.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/procfs.hpp"
#include "temp_dir.hpp"

using namespace flowtop::enrich;
namespace fs = std::filesystem;

namespace {

class FakeProc : public ::testing::Test {
  protected:
    void add_process(std::uint32_t pid, const std::string& comm,
                     const std::vector<std::pair<int, std::uint32_t>>& sockets,
                     const std::string& cgroup = "0::/\n") {
        proc.add_process(std::to_string(pid), comm, sockets, cgroup);
    }
    void add_socket(std::uint32_t pid, int fd, std::uint32_t inode) {
        proc.add_socket(std::to_string(pid), fd, inode);
    }
    flowtop::test::TempDir dir{"ftp_proc"};
    flowtop::test::FakeProc proc{dir.path};
    fs::path root{dir.path};
};

std::uint32_t resolve_one(InodeCache& cache, std::uint32_t inode) {
    std::uint32_t pid = 0;
    cache.resolve(std::span<const std::uint32_t>(&inode, 1), std::span<std::uint32_t>(&pid, 1));
    return pid;
}

}  // namespace

TEST(SocketLink, ParsesOnlySocketLinks) {
    EXPECT_EQ(socket_inode_of("socket:[12345]"), 12345u);
    EXPECT_EQ(socket_inode_of("pipe:[12345]"), 0u);
    EXPECT_EQ(socket_inode_of("socket:[]"), 0u);
    EXPECT_EQ(socket_inode_of("socket:[12x]"), 0u);
}

TEST_F(FakeProc, ResolvesAndThenServesHitsWithoutRescanning) {
    add_process(100, "nginx", {{3, 5001}, {4, 5002}});
    add_process(200, "curl", {{5, 6001}});
    InodeCache cache(root.string());
    EXPECT_EQ(resolve_one(cache, 6001), 200u);
    auto scanned = cache.stats().pids_scanned;
    EXPECT_EQ(scanned, 2u);
    // Known inodes cost one readlink each, no directory walk.
    auto reads = cache.stats().proc_reads;
    EXPECT_EQ(resolve_one(cache, 5002), 100u);
    EXPECT_EQ(cache.stats().pids_scanned, scanned);
    EXPECT_EQ(cache.stats().proc_reads, reads + 1);
}

TEST_F(FakeProc, NewProcessIsScannedAloneOnAMiss) {
    add_process(100, "nginx", {{3, 5001}});
    add_process(101, "sleep", {});
    InodeCache cache(root.string());
    EXPECT_EQ(resolve_one(cache, 5001), 100u);
    add_process(300, "python3", {{7, 7001}});
    auto scanned = cache.stats().pids_scanned;
    EXPECT_EQ(resolve_one(cache, 7001), 300u);
    EXPECT_EQ(cache.stats().pids_scanned, scanned + 1);
}

TEST_F(FakeProc, NewSocketOfAKnownServerIsFoundByRescanningOwnersFirst) {
    add_process(100, "nginx", {{3, 5001}});
    add_process(101, "sleep", {});
    InodeCache cache(root.string());
    EXPECT_EQ(resolve_one(cache, 5001), 100u);
    add_socket(100, 9, 5009);  // accepted a new connection
    auto scanned = cache.stats().pids_scanned;
    EXPECT_EQ(resolve_one(cache, 5009), 100u);
    EXPECT_EQ(cache.stats().pids_scanned, scanned + 1);  // not the sleeping process
}

TEST_F(FakeProc, ExitedOwnerIsStillTheAnswer) {
    add_process(100, "nginx", {{3, 5001}});
    add_process(400, "curl", {{3, 8001}});
    InodeCache cache(root.string());
    EXPECT_EQ(cache.scan_new_pids().size(), 2u);
    fs::remove_all(root / "400");  // curl exited; its TIME_WAIT socket lingers
    EXPECT_EQ(resolve_one(cache, 8001), 400u);
    EXPECT_FALSE(cache.alive(400));
}

TEST_F(FakeProc, UnknownInodeResolvesToZero) {
    add_process(100, "nginx", {{3, 5001}});
    InodeCache cache(root.string());
    EXPECT_EQ(resolve_one(cache, 999), 0u);
}

TEST_F(FakeProc, ReadsProcessInfo) {
    add_process(100, "nginx", {{3, 5001}},
                "0::/system.slice/"
                "docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n");
    ProcInfo info;
    ASSERT_TRUE(read_proc_info(root.string(), 100, info));
    EXPECT_EQ(info.comm, "nginx");
    EXPECT_EQ(info.cmdline, "nginx --flag");
    EXPECT_EQ(info.container, "docker:0123456789ab");
    EXPECT_EQ(info.netns, 4026531840u);
    EXPECT_EQ(info.uid, static_cast<std::uint32_t>(getuid()));
    EXPECT_FALSE(read_proc_info(root.string(), 999, info));
}

TEST(Cgroup, NamesContainersAndUnits) {
    EXPECT_EQ(flowtop::container_of_cgroup("0::/system.slice/nginx.service\n"), "nginx.service");
    EXPECT_EQ(
        flowtop::container_of_cgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
                                     "app-firefox-1234.scope\n"),
        "app-firefox-1234.scope");
    EXPECT_EQ(flowtop::container_of_cgroup(
                  "0::/machine.slice/libpod-"
                  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
                  ".scope/container\n"),
              "podman:fedcba987654");
    EXPECT_EQ(flowtop::container_of_cgroup(
                  "12:cpu:/docker/"
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
                  "1:name=systemd:/docker/"
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
                  "0::/\n"),
              "docker:0123456789ab");
    EXPECT_EQ(flowtop::container_of_cgroup("0::/\n"), "");
    EXPECT_EQ(flowtop::container_of_cgroup(""), "");
}

// Races with /proc, made on purpose through the OS seam: a process that exits between the
// listing of /proc and the read of its fd directory, and a socket link that cannot be read
// while its owner is checked.
TEST_F(FakeProc, AProcessGoneBeforeItsFdsAreReadIsSkipped) {
    add_process(200, "curl", {{5, 6001}});
    InodeCache cache(root.string());
    {
        // Every read of 200's fd directory finds it gone (the first opendir lists /proc).
        flowtop::os::ScopedFault gone({flowtop::os::Call::opendir, ENOENT, 1, 1000});
        EXPECT_EQ(resolve_one(cache, 6001), 0u);
        EXPECT_GE(flowtop::os::injected(flowtop::os::Call::opendir), 1);
    }
}

TEST_F(FakeProc, AFailedReadOfAnFdDirectoryIsRetriedInTheSameLookup) {
    add_process(200, "curl", {{5, 6001}});
    InodeCache cache(root.string());
    // One transient failure (too many open files): the lookup's later passes read it again.
    flowtop::os::ScopedFault once({flowtop::os::Call::opendir, EMFILE, 1, 1});
    EXPECT_EQ(resolve_one(cache, 6001), 200u);
    EXPECT_EQ(flowtop::os::injected(flowtop::os::Call::opendir), 1);
}

TEST_F(FakeProc, AnUnreadableLinkDuringTheCheckKeepsTheLastKnownOwner) {
    add_process(100, "nginx", {{3, 5001}});
    InodeCache cache(root.string());
    ASSERT_EQ(resolve_one(cache, 5001), 100u);
    const auto misses = cache.stats().misses;
    flowtop::os::ScopedFault unreadable({flowtop::os::Call::readlink, ENOENT, 0, 1});
    EXPECT_EQ(resolve_one(cache, 5001), 100u);
    EXPECT_EQ(flowtop::os::injected(flowtop::os::Call::readlink), 1);
    EXPECT_EQ(cache.stats().misses, misses + 1);  // a miss, answered from what was known
}
