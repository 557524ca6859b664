#pragma once
// The system calls that fail in interesting ways go through here: one policy for EINTR and
// short transfers, and one place where tests make them fail (EINTR, EAGAIN, ENOBUFS, ENOENT,
// EIO...) on purpose. The wrappers keep the C calling convention (-1 and errno) so that call
// sites read like the calls they replace; they are async-signal-safe where the call is (the
// restore path of a fatal signal writes through os::pwrite_full).
//
// Policy:
//   - EINTR is retried, except by poll, which returns 0 (a wake-up the caller treats as a
//     timeout; its loop recomputes the deadline).
//   - read_full/pread_full/write_full/pwrite_full loop over short transfers until the whole
//     length or end of file; recv/send do not (a datagram is one call).
//   - Everything else is returned as it came.
#include <dirent.h>
#include <ifaddrs.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>

namespace flowtop::os {

enum class Call : unsigned char {
    recv,
    send,
    poll,
    read,
    pread,
    write,
    pwrite,
    readlink,
    opendir,
    setns,
    getifaddrs,
};
inline constexpr int k_call_count = 11;

ssize_t recv(int fd, void* buf, std::size_t len, int flags) noexcept;
ssize_t send(int fd, const void* buf, std::size_t len, int flags) noexcept;
ssize_t sendto(int fd, const void* buf, std::size_t len, int flags, const sockaddr* to,
               socklen_t to_len) noexcept;                 // counted as Call::send
ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept;  // counted as Call::recv
int poll(pollfd* fds, nfds_t count, int timeout_ms) noexcept;
ssize_t read_some(int fd, void* buf, std::size_t len) noexcept;  // one read, EINTR retried
ssize_t read_full(int fd, void* buf, std::size_t len) noexcept;
ssize_t pread_full(int fd, void* buf, std::size_t len, off_t offset) noexcept;
ssize_t write_full(int fd, const void* buf, std::size_t len) noexcept;
ssize_t pwrite_full(int fd, const void* buf, std::size_t len, off_t offset) noexcept;
ssize_t readlink(const char* path, char* buf, std::size_t len) noexcept;
DIR* opendir(const char* path) noexcept;
int setns(int fd, int nstype) noexcept;
int getifaddrs(ifaddrs** list) noexcept;

// Test hook: after `skip` calls of `call` that go through, the next `times` fail with `error`
// (the call itself is not made). Replaces what was armed for that call before. Process-wide,
// lock-free (a signal handler may meet it).
struct Fault {
    Call call;
    int error;
    int skip = 0;
    int times = 1;
};
void inject(const Fault& fault) noexcept;
void clear_faults() noexcept;
// How many of `call` failed by injection since the last clear_faults().
int injected(Call call) noexcept;

// Arms a fault for a scope (tests).
class ScopedFault {
  public:
    explicit ScopedFault(const Fault& fault) noexcept { inject(fault); }
    ~ScopedFault() { clear_faults(); }
    ScopedFault(const ScopedFault&) = delete;
    ScopedFault& operator=(const ScopedFault&) = delete;
};

}  // namespace flowtop::os
