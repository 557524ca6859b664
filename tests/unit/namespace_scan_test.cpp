// Finding namespaces (--all-netns) in a fake /proc and /run/netns laid out like the real ones.
#include "flowtop/netns/namespace_scan.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "fake_proc.hpp"
#include "flowtop/util/system.hpp"
#include "temp_dir.hpp"

using namespace flowtop;
namespace fs = std::filesystem;

namespace {

class FakeHost : public ::testing::Test {
  protected:
    void SetUp() override { fs::create_directories(root_ / "run"); }

    // An `ip netns add NAME`: a file whose inode stands for the namespace's.
    std::uint64_t add_name(const std::string& name) {
        std::ofstream(root_ / "run" / name).put('\0');
        struct stat st {};
        stat((root_ / "run" / name).c_str(), &st);
        return st.st_ino;
    }
    void add_process(const std::string& pid, std::uint64_t netns, const std::string& cgroup) {
        proc_.add_process(pid, "sh", {}, cgroup, netns);
    }
    netns::NamespaceScanner scanner() {
        return netns::NamespaceScanner(
            {.run_netns = (root_ / "run").string(), .proc = (root_ / "proc").string()});
    }
    static const netns::NamespaceEntry* find(const std::vector<netns::NamespaceEntry>& all,
                                             std::uint64_t inode) {
        auto it =
            std::find_if(all.begin(), all.end(), [&](const auto& e) { return e.inode == inode; });
        return it == all.end() ? nullptr : &*it;
    }
    flowtop::test::TempDir dir_{"flowtop-nsscan"};
    fs::path root_{dir_.path};
    flowtop::test::FakeProc proc_{root_ / "proc"};
};

}  // namespace

TEST(NamespaceLink, ParsesOnlyNetworkNamespaceLinks) {
    EXPECT_EQ(parse_netns_link("net:[4026531840]"), 4026531840u);
    EXPECT_EQ(parse_netns_link("mnt:[4026531840]"), 0u);
    EXPECT_EQ(parse_netns_link("net:[12x]"), 0u);
    EXPECT_EQ(parse_netns_link("net:[]"), 0u);
    EXPECT_EQ(parse_netns_link(""), 0u);
}

TEST_F(FakeHost, EachNamespaceOnceByNameThenByItsProcesses) {
    const std::uint64_t red = add_name("red");
    const std::uint64_t blue = add_name("blue");
    add_process("self", 100, "0::/user.slice\n");  // flowtop itself
    add_process("1", 100, "0::/init.scope\n");
    add_process("40", red, "0::/user.slice/session-1.scope\n");  // in a named namespace
    add_process("20", 200,
                "0::/system.slice/"
                "docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n");
    add_process("21", 200, "0::/system.slice/other.service\n");
    add_process("30", 300, "0::/\n");
    fs::create_directories(root_ / "proc" / "sys");  // not a process

    auto found = scanner().scan();
    ASSERT_EQ(found.size(), 5u);
    ASSERT_TRUE(find(found, red));
    EXPECT_EQ(find(found, red)->label, "red");
    EXPECT_EQ(find(found, red)->path, (root_ / "run" / "red").string());
    EXPECT_EQ(find(found, blue)->label, "blue");
    EXPECT_EQ(find(found, 100)->label, "host");
    // Unnamed: the container of its oldest process, else the inode as lsns shows it.
    EXPECT_EQ(find(found, 200)->label, "docker:0123456789ab");
    EXPECT_EQ(find(found, 200)->path, (root_ / "proc" / "20" / "ns" / "net").string());
    EXPECT_EQ(find(found, 300)->label, "net:[300]");
}

TEST_F(FakeHost, LabelsStayUniqueAndGoneNamespacesLeaveTheScan) {
    add_process("self", 100, "");
    add_process("10", 200, "0::/system.slice/app.service\n");
    add_process("11", 300, "0::/system.slice/app.service\n");
    auto s = scanner();
    auto found = s.scan();
    ASSERT_EQ(found.size(), 3u);
    EXPECT_EQ(find(found, 200)->label, "app.service/net:[200]");
    EXPECT_EQ(find(found, 300)->label, "app.service/net:[300]");

    fs::remove_all(root_ / "proc" / "11");
    found = s.scan();
    EXPECT_EQ(found.size(), 2u);
    EXPECT_FALSE(find(found, 300));
}
