#include "flowtop/util/os.hpp"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace flowtop::os {
namespace {

struct Plan {
    std::atomic<int> skip{0};
    std::atomic<int> times{0};
    std::atomic<int> error{0};
    std::atomic<int> hits{0};
};

Plan g_plans[k_call_count];
// One relaxed load on the normal path: nothing armed, nothing to look at.
std::atomic<bool> g_armed{false};

// True (errno set) when an injected fault answers this call instead of the system.
bool injected_failure(Call call) noexcept {
    if (!g_armed.load(std::memory_order_relaxed)) return false;
    Plan& plan = g_plans[static_cast<int>(call)];
    if (plan.times.load() <= 0) return false;
    for (int skip = plan.skip.load(); skip > 0;)
        if (plan.skip.compare_exchange_weak(skip, skip - 1)) return false;
    for (int times = plan.times.load(); times > 0;) {
        if (plan.times.compare_exchange_weak(times, times - 1)) {
            plan.hits.fetch_add(1);
            errno = plan.error.load();
            return true;
        }
    }
    return false;
}

template <typename Fn>
auto retry_eintr(Fn fn) noexcept {
    for (;;) {
        auto r = fn();
        if (r >= 0 || errno != EINTR) return r;
    }
}

// Loops one transfer over short counts; `step(done)` moves the rest from offset `done`.
template <typename Step>
ssize_t whole(std::size_t len, Call call, Step step) noexcept {
    std::size_t done = 0;
    while (done < len) {
        if (injected_failure(call)) {
            if (errno == EINTR) continue;
            return -1;
        }
        const ssize_t n = step(done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;  // end of file (or a write that cannot go on)
        done += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(done);
}

}  // namespace

ssize_t recv(int fd, void* buf, std::size_t len, int flags) noexcept {
    for (;;) {
        if (injected_failure(Call::recv)) {
            if (errno == EINTR) continue;
            return -1;
        }
        const ssize_t n = ::recv(fd, buf, len, flags);
        if (n >= 0 || errno != EINTR) return n;
    }
}

ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept {
    for (;;) {
        if (injected_failure(Call::recv)) {
            if (errno == EINTR) continue;
            return -1;
        }
        const ssize_t n = ::recvmsg(fd, msg, flags);
        if (n >= 0 || errno != EINTR) return n;
    }
}

ssize_t send(int fd, const void* buf, std::size_t len, int flags) noexcept {
    for (;;) {
        if (injected_failure(Call::send)) {
            if (errno == EINTR) continue;
            return -1;
        }
        const ssize_t n = ::send(fd, buf, len, flags);
        if (n >= 0 || errno != EINTR) return n;
    }
}

ssize_t sendto(int fd, const void* buf, std::size_t len, int flags, const sockaddr* to,
               socklen_t to_len) noexcept {
    for (;;) {
        if (injected_failure(Call::send)) {
            if (errno == EINTR) continue;
            return -1;
        }
        const ssize_t n = ::sendto(fd, buf, len, flags, to, to_len);
        if (n >= 0 || errno != EINTR) return n;
    }
}

int poll(pollfd* fds, nfds_t count, int timeout_ms) noexcept {
    int n = injected_failure(Call::poll) ? -1 : ::poll(fds, count, timeout_ms);
    if (n < 0 && errno == EINTR) {
        // A signal: report "nothing ready" and let the caller's loop look at its flags.
        for (nfds_t i = 0; i < count; ++i) fds[i].revents = 0;
        return 0;
    }
    return n;
}

ssize_t read_some(int fd, void* buf, std::size_t len) noexcept {
    for (;;) {
        if (injected_failure(Call::read)) {
            if (errno == EINTR) continue;
            return -1;
        }
        const ssize_t n = ::read(fd, buf, len);
        if (n >= 0 || errno != EINTR) return n;
    }
}

ssize_t read_full(int fd, void* buf, std::size_t len) noexcept {
    auto* bytes = static_cast<char*>(buf);
    return whole(len, Call::read,
                 [&](std::size_t done) { return ::read(fd, bytes + done, len - done); });
}

ssize_t pread_full(int fd, void* buf, std::size_t len, off_t offset) noexcept {
    auto* bytes = static_cast<char*>(buf);
    return whole(len, Call::pread, [&](std::size_t done) {
        return ::pread(fd, bytes + done, len - done, offset + static_cast<off_t>(done));
    });
}

ssize_t write_full(int fd, const void* buf, std::size_t len) noexcept {
    const auto* bytes = static_cast<const char*>(buf);
    return whole(len, Call::write,
                 [&](std::size_t done) { return ::write(fd, bytes + done, len - done); });
}

ssize_t pwrite_full(int fd, const void* buf, std::size_t len, off_t offset) noexcept {
    const auto* bytes = static_cast<const char*>(buf);
    return whole(len, Call::pwrite, [&](std::size_t done) {
        return ::pwrite(fd, bytes + done, len - done, offset + static_cast<off_t>(done));
    });
}

ssize_t readlink(const char* path, char* buf, std::size_t len) noexcept {
    if (injected_failure(Call::readlink)) return -1;
    return ::readlink(path, buf, len);
}

DIR* opendir(const char* path) noexcept {
    for (;;) {
        if (injected_failure(Call::opendir)) {
            if (errno == EINTR) continue;
            return nullptr;
        }
        DIR* d = ::opendir(path);
        if (d || errno != EINTR) return d;
    }
}

int setns(int fd, int nstype) noexcept {
    if (injected_failure(Call::setns)) return -1;
    return ::setns(fd, nstype);
}

int getifaddrs(ifaddrs** list) noexcept {
    if (injected_failure(Call::getifaddrs)) return -1;
    return retry_eintr([&] { return ::getifaddrs(list); });
}

void inject(const Fault& fault) noexcept {
    Plan& plan = g_plans[static_cast<int>(fault.call)];
    plan.times.store(0);
    plan.error.store(fault.error);
    plan.skip.store(fault.skip);
    plan.times.store(fault.times);
    g_armed.store(true);
}

void clear_faults() noexcept {
    g_armed.store(false);
    for (Plan& plan : g_plans) {
        plan.times.store(0);
        plan.skip.store(0);
        plan.hits.store(0);
    }
}

int injected(Call call) noexcept { return g_plans[static_cast<int>(call)].hits.load(); }

}  // namespace flowtop::os
