#include "flowtop/util/privileges.hpp"

#include <dirent.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "flowtop/util/error.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::privileges {
namespace {

constexpr std::uint64_t bit(int cap) { return std::uint64_t{1} << cap; }

// Read before any handler runs: the handler itself only makes system calls.
std::atomic<int> g_last_cap{40};
std::atomic<std::uint64_t> g_keep{0};
std::atomic<pid_t> g_target{0};
std::atomic<int> g_result{0};  // 0 waiting, 1 dropped, 2 failed

bool capget_this(__user_cap_data_struct (&data)[2]) noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capget, &header, data) == 0;
}

void on_drop_signal(int) {
    const int saved = errno;
    if (static_cast<pid_t>(syscall(SYS_gettid)) == g_target.load())
        g_result.store(drop_this_thread(g_keep.load()) ? 1 : 2);
    errno = saved;
}

int read_last_cap() noexcept {
    int last = 40;
    if (std::FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "r")) {
        if (std::fscanf(f, "%d", &last) != 1) last = 40;
        std::fclose(f);
    }
    return last > 0 && last < 64 ? last : 40;
}

std::vector<pid_t> thread_ids() {
    std::vector<pid_t> out;
    if (DIR* d = os::opendir("/proc/self/task")) {
        while (dirent* e = readdir(d))
            if (int tid = std::atoi(e->d_name); tid > 0) out.push_back(tid);
        closedir(d);
    }
    return out;
}

// A thread that holds nothing beyond `keep` and cannot gain more (started under a bounding set
// and NoNewPrivs, as a systemd unit with CapabilityBoundingSet= and NoNewPrivileges= starts
// every thread) has nothing to drop: it is not signalled. That includes threads that are not
// flowtop's and would never answer, like a sanitizer's.
bool holds_nothing_beyond(pid_t tid, std::uint64_t keep) {
    std::FILE* f = std::fopen(("/proc/self/task/" + std::to_string(tid) + "/status").c_str(), "r");
    if (!f) return false;
    char line[256];
    int checked = 0;
    bool within = true;
    while (std::fgets(line, sizeof line, f)) {
        unsigned long long v = 0;
        char name[32] = {};
        if (std::sscanf(line, "%31[A-Za-z]: %llx", name, &v) != 2) continue;
        const std::string field = name;
        if (field == "CapPrm" || field == "CapEff" || field == "CapBnd") {
            within &= (v & ~keep) == 0;
            ++checked;
        } else if (field == "CapInh" || field == "CapAmb") {
            within &= v == 0;
            ++checked;
        } else if (field == "NoNewPrivs") {
            within &= v == 1;
            ++checked;
        }
    }
    std::fclose(f);
    return within && checked == 6;
}

bool thread_exists(pid_t tid) {
    return access(("/proc/self/task/" + std::to_string(tid)).c_str(), F_OK) == 0;
}

}  // namespace

std::uint64_t kept_mask(Needs needs) noexcept {
    std::uint64_t keep = bit(CAP_NET_ADMIN);
    if (needs.process_attribution) keep |= bit(CAP_SYS_PTRACE) | bit(CAP_DAC_READ_SEARCH);
    if (needs.all_netns) keep |= bit(CAP_SYS_ADMIN) | bit(CAP_SYS_PTRACE);
    return keep;
}

std::uint64_t effective() noexcept {
    __user_cap_data_struct data[2] = {};
    if (!capget_this(data)) return 0;
    return data[0].effective | (std::uint64_t{data[1].effective} << 32);
}

bool drop_this_thread(std::uint64_t keep) noexcept {
    __user_cap_data_struct data[2] = {};
    if (!capget_this(data)) return false;
    const std::uint64_t permitted = data[0].permitted | (std::uint64_t{data[1].permitted} << 32);
    if (data[0].effective & bit(CAP_SETPCAP)) {
        // Root's exec would otherwise hand a child every capability again.
        const int bits = prctl(PR_GET_SECUREBITS);
        if (bits >= 0)
            prctl(PR_SET_SECUREBITS, bits | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0);
        for (int cap = 0; cap <= g_last_cap.load(); ++cap)
            if (!(keep & bit(cap))) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    const std::uint64_t now = permitted & keep;
    data[0].effective = data[0].permitted = static_cast<std::uint32_t>(now);
    data[1].effective = data[1].permitted = static_cast<std::uint32_t>(now >> 32);
    data[0].inheritable = data[1].inheritable = 0;
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    const bool dropped = syscall(SYS_capset, &header, data) == 0;
    const bool no_new = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
    return dropped && no_new;
}

void drop_all_threads(std::uint64_t keep) {
    g_last_cap.store(read_last_cap());
    g_keep.store(keep);
    // Credentials are per thread: each one drops its own, from a signal handler that the drop
    // sends to it alone, like glibc's setuid broadcast.
    const int signo = signals::thread_call_signal();
    struct sigaction sa {
    }, old{};
    sa.sa_handler = on_drop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(signo, &sa, &old) != 0)
        throw Error(errno_message("cannot drop capabilities", errno));
    const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    std::set<pid_t> done{self};
    std::string failure;
    // Threads made meanwhile inherit their maker's set; a few rounds find any made by a thread
    // that had not dropped yet.
    for (int round = 0; round < 5 && failure.empty(); ++round) {
        bool found_new = false;
        for (pid_t tid : thread_ids()) {
            if (done.contains(tid)) continue;
            found_new = true;
            if (holds_nothing_beyond(tid, keep)) {
                done.insert(tid);
                continue;
            }
            g_result.store(0);
            g_target.store(tid);
            if (syscall(SYS_tgkill, getpid(), tid, signo) != 0) {
                done.insert(tid);  // gone already
                continue;
            }
            for (int waited = 0; g_result.load() == 0 && waited < 2000; ++waited) {
                timespec ms{0, 1000000};
                nanosleep(&ms, nullptr);
            }
            if (g_result.load() == 2)
                failure = "thread " + std::to_string(tid) + " could not drop its capabilities";
            else if (g_result.load() == 0 && thread_exists(tid))
                failure = "thread " + std::to_string(tid) + " did not answer";
            done.insert(tid);
        }
        if (!found_new) break;
    }
    g_target.store(0);
    sigaction(signo, &old, nullptr);
    if (!drop_this_thread(keep) && failure.empty()) failure = errno_message("capset", errno);
    if (!failure.empty()) throw Error("cannot drop capabilities: " + failure);
}

}  // namespace flowtop::privileges
