// The OS seam: its EINTR and short-transfer policy on real descriptors, and its injected
// faults, which the other tests use to reach error paths the kernel rarely takes.
#include "flowtop/util/os.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "flowtop/util/handle.hpp"
#include "flowtop/util/settings_ledger.hpp"

using namespace flowtop;
namespace fs = std::filesystem;

namespace {

struct Pipe {
    Pipe() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) == 0) {
            read_end.reset(fds[0]);
            write_end.reset(fds[1]);
        }
    }
    UniqueFd read_end, write_end;
};

fs::path temp_file(const std::string& name, const std::string& text) {
    fs::path p = fs::temp_directory_path() / (name + "_" + std::to_string(getpid()));
    std::ofstream(p) << text;
    return p;
}

}  // namespace

TEST(OsSeam, InterruptedCallsAreRetriedAndTheWholeLengthArrives) {
    Pipe p;
    ASSERT_TRUE(p.read_end);
    os::ScopedFault fault({os::Call::read, EINTR, 0, 3});
    // The writer sends in three pieces with pauses: a plain read() would return the first.
    std::jthread writer([&] {
        for (const char* piece : {"abc", "def", "ghi"}) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            ASSERT_EQ(::write(p.write_end.get(), piece, 3), 3);
        }
    });
    char buf[9];
    EXPECT_EQ(os::read_full(p.read_end.get(), buf, sizeof buf), 9);
    EXPECT_EQ(std::string(buf, 9), "abcdefghi");
    EXPECT_EQ(os::injected(os::Call::read), 3);
}

TEST(OsSeam, ReadFullStopsAtEndOfFile) {
    const auto path = temp_file("os_eof", "short");
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    char buf[64];
    EXPECT_EQ(os::pread_full(fd.get(), buf, sizeof buf, 0), 5);
    EXPECT_EQ(os::pread_full(fd.get(), buf, sizeof buf, 2), 3);
    fs::remove(path);
}

TEST(OsSeam, InjectedErrorsReachTheCallerWithErrnoAfterTheSkippedCalls) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd a(pair[0]), b(pair[1]);
    os::ScopedFault fault({os::Call::recv, ENOBUFS, 1, 1});
    char buf[8];
    ASSERT_EQ(os::send(a.get(), "one", 3, 0), 3);
    ASSERT_EQ(os::send(a.get(), "two", 3, 0), 3);
    EXPECT_EQ(os::recv(b.get(), buf, sizeof buf, 0), 3);  // skipped: goes through
    errno = 0;
    EXPECT_EQ(os::recv(b.get(), buf, sizeof buf, 0), -1);
    EXPECT_EQ(errno, ENOBUFS);
    EXPECT_EQ(os::recv(b.get(), buf, sizeof buf, 0), 3);  // the datagram was not consumed
    EXPECT_EQ(std::string(buf, 3), "two");
    EXPECT_EQ(os::injected(os::Call::recv), 1);
}

TEST(OsSeam, AnInterruptedPollLooksLikeATimeout) {
    Pipe p;
    ASSERT_TRUE(p.read_end);
    ASSERT_EQ(::write(p.write_end.get(), "x", 1), 1);
    os::ScopedFault fault({os::Call::poll, EINTR, 0, 1});
    pollfd fd{p.read_end.get(), POLLIN, POLLIN};
    EXPECT_EQ(os::poll(&fd, 1, 1000), 0);
    EXPECT_EQ(fd.revents, 0);
    EXPECT_EQ(os::poll(&fd, 1, 1000), 1);  // the next one sees the byte
    EXPECT_TRUE(fd.revents & POLLIN);
}

TEST(OsSeam, AMissingEntryIsReportedNotRetried) {
    os::ScopedFault fault({os::Call::opendir, ENOENT, 0, 1});
    errno = 0;
    EXPECT_EQ(os::opendir("/"), nullptr);
    EXPECT_EQ(errno, ENOENT);
    DIR* d = os::opendir("/");
    ASSERT_NE(d, nullptr);
    closedir(d);
}

// The restore write's result is no longer ignored: a setting that cannot be put back is named,
// with the command that does it by hand.
TEST(OsSeam, ASettingThatCannotBePutBackIsNamed) {
    const auto dir = fs::temp_directory_path() / ("os_ledger_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "sys");
    std::ofstream(dir / "sys" / "nf_conntrack_acct") << "0\n";
    UniqueFd fd(open((dir / "sys" / "nf_conntrack_acct").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd);
    std::vector<LedgerSetting> settings(1);
    settings[0].name = "net.netfilter.nf_conntrack_acct";
    settings[0].fd = fd.get();
    NamespaceLedger ledger("", 1, "os-test");  // not shared: this process alone
    std::vector<std::string> warnings;
    ledger.join(settings, warnings);
    ASSERT_TRUE(settings[0].claimed);
    std::vector<std::string> messages;
    {
        os::ScopedFault fault({os::Call::pwrite, EIO, 0, 1000});
        ledger.leave(settings, messages);
    }
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_NE(messages[0].find("could not put net.netfilter.nf_conntrack_acct back to 0"),
              std::string::npos)
        << messages[0];
    EXPECT_NE(messages[0].find("sysctl -w net.netfilter.nf_conntrack_acct=0"), std::string::npos);
    fs::remove_all(dir);
}
