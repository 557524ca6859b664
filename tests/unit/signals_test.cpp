// Every way a signal can end flowtop restores what it changed: fork a child that registers a
// restore write (as the sysctl guard does), let the signal end it, read the file afterwards.
#include "flowtop/util/signals.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;
using namespace flowtop;

// ASan handles SIGSEGV, SIGBUS and SIGFPE itself; flowtop's handler restores and then hands
// over to it, and its report ends the process with an exit code instead of the signal.
#ifdef __SANITIZE_ADDRESS__
constexpr bool k_asan = true;
#else
constexpr bool k_asan = false;
#endif

// The child ended the way a fatal signal ends flowtop: by the signal, or (under ASan, for the
// signals it handles) by its report.
bool ended_by(int status, int signo) {
    if (WIFSIGNALED(status)) return WTERMSIG(status) == signo;
    const bool asan_signal = signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE;
    return k_asan && asan_signal && WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
           WEXITSTATUS(status) < 90;
}

namespace {

class RestoreFile : public ::testing::Test {
  protected:
    void SetUp() override {
        path = fs::temp_directory_path() / ("flowtop-signals-" + std::to_string(getpid()));
        std::ofstream(path) << "1\n";  // "the setting flowtop turned on"
    }
    void TearDown() override { fs::remove(path); }
    std::string content() const {
        std::ifstream in(path);
        std::string s;
        std::getline(in, s);
        return s;
    }
    // In the child: the prepared write that puts "0" back, and the handlers.
    void arm() const {
        int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || signals::register_restore_write(fd, "0\n", 2) < 0) _exit(90);
        signals::install_handlers();
    }
    fs::path path;
};

// Bounded only by a limit no stack reaches (the compiler rejects a visibly endless one).
volatile long g_limit = 1L << 40;
int deep(long n) {
    volatile char pad[512];
    pad[0] = static_cast<char>(n);
    if (n >= g_limit) return pad[0];
    return deep(n + 1) + pad[0];  // not a tail call: every level keeps its frame
}

}  // namespace

TEST_F(RestoreFile, StackOverflowRestoresOnTheAlternateStack) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        arm();
        _exit(deep(0) == 0 ? 91 : 92);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(ended_by(status, SIGSEGV)) << "status " << status;
    EXPECT_EQ(content(), "0");
}

TEST_F(RestoreFile, StackOverflowOnAThreadWithItsOwnAlternateStackRestores) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        arm();
        std::thread worker([] {
            signals::AlternateStack stack;
            _exit(deep(0) == 0 ? 91 : 92);
        });
        worker.join();
        _exit(93);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(ended_by(status, SIGSEGV)) << "status " << status;
    EXPECT_EQ(content(), "0");
}

TEST_F(RestoreFile, StackOverflowOnACrashSafeThreadRestores) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        arm();
        auto worker =
            signals::crash_safe_thread([](std::stop_token) { _exit(deep(0) == 0 ? 91 : 92); });
        worker.join();
        _exit(93);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(ended_by(status, SIGSEGV)) << "status " << status;
    EXPECT_EQ(content(), "0");
}

// Issue 13 item 4: the enrichment workers, the exporters, the alert hook's runner and the
// writer all start through crash_safe_thread, so none of them overflows its stack without
// the restore. A thread started any other way in src/ fails here.
TEST(Signals, EveryThreadInSrcIsACrashSafeThread) {
    std::size_t threads = 0;
    for (const auto& entry :
         fs::recursive_directory_iterator(fs::path(FLOWTOP_SOURCE_DIR) / "src")) {
        if (entry.path().extension() != ".cpp" && entry.path().extension() != ".hpp") continue;
        std::ifstream in(entry.path());
        std::string line;
        for (int n = 1; std::getline(in, line); ++n) {
            if (line.find("crash_safe_thread(") != std::string::npos) ++threads;
            for (const char* bare : {"std::jthread(", "std::jthread([", "std::thread(",
                                     "std::thread([", "pthread_create("})
                EXPECT_EQ(line.find(bare), std::string::npos)
                    << entry.path().string() << ":" << n << ": " << line;
        }
    }
    EXPECT_GE(threads, 8u) << "the writer, dns, geoip, proc, prometheus, ipfix, log, alert-exec";
}

TEST_F(RestoreFile, SignalsThatEndAProcessByDefaultAreAllHandled) {
    // Exit signals set the flag the main loop reads; it then restores and re-raises.
    for (int signo :
         {SIGUSR1, SIGUSR2, SIGALRM, SIGPWR, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGSTKFLT, SIGIO,
          SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGRTMIN, SIGRTMAX}) {
        std::ofstream(path) << "1\n";
        pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            signal(signo, SIG_DFL);  // whatever the test runner inherited
            arm();
            raise(signo);
            if (signals::pending_exit_signal() != signo) _exit(93);
            signals::run_restore_writes();  // what the unwinding guard does
            signals::reraise_pending();
            _exit(94);
        }
        int status = 0;
        waitpid(child, &status, 0);
        EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signo)
            << strsignal(signo) << ": status " << status;
        EXPECT_EQ(content(), "0") << strsignal(signo);
    }
    // Fatal ones restore in the handler itself.
    for (int signo : {SIGSYS, SIGTRAP, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
        std::ofstream(path) << "1\n";
        pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            arm();
            raise(signo);
            _exit(95);
        }
        int status = 0;
        waitpid(child, &status, 0);
        EXPECT_TRUE(ended_by(status, signo)) << strsignal(signo) << ": status " << status;
        EXPECT_EQ(content(), "0") << strsignal(signo);
    }
}

namespace {
int g_marker_fd = -1;
void earlier_handler(int) {
    [[maybe_unused]] auto n = write(g_marker_fd, "E", 1);
    _exit(42);
}
}  // namespace

TEST_F(RestoreFile, FatalSignalsChainToTheHandlerInstalledBefore) {
    int marker[2];
    ASSERT_EQ(pipe(marker), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        close(marker[0]);
        g_marker_fd = marker[1];
        signal(SIGBUS, earlier_handler);  // as a sanitizer or a crash reporter would
        arm();
        raise(SIGBUS);
        _exit(96);
    }
    close(marker[1]);
    int status = 0;
    waitpid(child, &status, 0);
    char c = 0;
    EXPECT_EQ(read(marker[0], &c, 1), 1);
    close(marker[0]);
    EXPECT_EQ(c, 'E');
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 42);
    EXPECT_EQ(content(), "0");  // ours ran first
}

TEST_F(RestoreFile, ASignalIgnoredAtStartStaysIgnored) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        signal(SIGHUP, SIG_IGN);  // nohup
        arm();
        raise(SIGHUP);
        _exit(signals::pending_exit_signal() == 0 ? 0 : 97);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A handler someone installed before flowtop (libFuzzer's timeout alarm, a debugger's) stays
// theirs, on the first install and on every later one.
volatile sig_atomic_t g_their_handler_ran = 0;
void their_handler(int) { g_their_handler_ran = 1; }

TEST_F(RestoreFile, AnExitSignalHandledBySomeoneElseAtStartStaysTheirs) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        signal(SIGALRM, their_handler);
        arm();
        signals::install_handlers();  // a later install (an mmdb opened) leaves it too
        raise(SIGALRM);
        raise(SIGALRM);  // flowtop's handler would end the process on a second one
        _exit(g_their_handler_ran == 1 && signals::pending_exit_signal() == 0 ? 0 : 97);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(content(), "1");  // not flowtop's way out: nothing was restored
}

TEST_F(RestoreFile, AnExitSignalReplacedAfterStartIsTakenBackAndStillRestores) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        arm();
        signal(SIGTERM, their_handler);  // e.g. a library that sets up after flowtop
        signals::install_handlers();
        raise(SIGTERM);
        if (g_their_handler_ran || signals::pending_exit_signal() != SIGTERM) _exit(97);
        signals::run_restore_writes();  // what the orderly shutdown's RAII does
        signals::reraise_pending();
        _exit(98);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
    EXPECT_EQ(content(), "0");
}

TEST(Signals, ServiceModeHangupSurvivesALaterInstall) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        signals::install_handlers();
        signals::set_hangup_reloads();
        signals::install_handlers();  // the GeoIP database reopened on a reload installs again
        raise(SIGHUP);
        raise(SIGHUP);
        _exit(signals::take_hangups() == 2 && signals::pending_exit_signal() == 0 ? 0 : 97);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Signals, ThreadsStartedWhileBlockedLeaveExitSignalsToTheMainThread) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        signals::install_handlers();
        signals::block_exit_signals();
        bool worker_blocks = false;
        std::thread worker([&] {
            sigset_t mask;
            pthread_sigmask(SIG_BLOCK, nullptr, &mask);
            worker_blocks = sigismember(&mask, SIGTERM) == 1 && sigismember(&mask, SIGUSR1) == 1;
        });
        worker.join();
        signals::unblock_exit_signals();
        sigset_t mask;
        pthread_sigmask(SIG_BLOCK, nullptr, &mask);
        const bool main_takes = sigismember(&mask, SIGTERM) == 0;
        _exit(worker_blocks && main_takes ? 0 : 98);
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}
