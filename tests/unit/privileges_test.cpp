// The capability drop reaches every thread, not only the one that asks (capabilities are per
// thread). Unprivileged runs check that the drop works and sets NoNewPrivs; as root (CI) the
// drop from a full set is checked bit by bit.
#include "flowtop/util/privileges.hpp"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace {

std::string field(const std::string& path, const std::string& name) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(name + ":", 0) == 0) {
            std::string v = line.substr(name.size() + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    return "";
}

}  // namespace

TEST(Privileges, KeptMaskFollowsTheOptions) {
    using flowtop::privileges::kept_mask;
    const auto bit = [](int cap) { return std::uint64_t{1} << cap; };
    EXPECT_EQ(kept_mask({}), bit(CAP_NET_ADMIN));
    EXPECT_EQ(kept_mask({.process_attribution = true}),
              bit(CAP_NET_ADMIN) | bit(CAP_SYS_PTRACE) | bit(CAP_DAC_READ_SEARCH));
    EXPECT_EQ(kept_mask({.all_netns = true}),
              bit(CAP_NET_ADMIN) | bit(CAP_SYS_ADMIN) | bit(CAP_SYS_PTRACE));
}

TEST(Privileges, DropReachesEveryThread) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        for (int i = 0; i < 3; ++i)
            threads.emplace_back([&] {
                while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            });
        const std::uint64_t keep = std::uint64_t{1} << CAP_NET_ADMIN;
        const std::uint64_t before = flowtop::privileges::effective();
        int code = 0;
        try {
            flowtop::privileges::drop_all_threads(keep);
        } catch (...) {
            code = 10;
        }
        char want[17];
        std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(before & keep));
        int tasks = 0;
        for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
            const std::string status = (t.path() / "status").string();
            if (code == 0 && field(status, "CapEff") != want) code = 11;
            if (code == 0 && field(status, "CapPrm") != want) code = 12;
            if (code == 0 && field(status, "NoNewPrivs") != "1") code = 13;
            ++tasks;
        }
        if (code == 0 && tasks != 4) code = 14;
        // A thread started afterwards inherits the reduced set.
        std::string late;
        std::thread([&] { late = field("/proc/thread-self/status", "CapEff"); }).join();
        if (code == 0 && late != want) code = 15;
        // A program it runs gets nothing, even as root (SECBIT_NOROOT, NoNewPrivs).
        if (std::FILE* p = popen("grep CapEff /proc/self/status", "r")) {
            char line[128] = {};
            if (!std::fgets(line, sizeof line, p)) line[0] = '\0';
            pclose(p);
            if (code == 0 && std::string(line).find("0000000000000000") == std::string::npos)
                code = 16;
        }
        stop = true;
        for (auto& t : threads) t.join();
        _exit(code);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: drop threw, 11/12: a thread kept capabilities, "
                                         "13: NoNewPrivs missing, 14: threads missed, 15: late, "
                                         "16: a program it ran got capabilities";
}
