#pragma once
// Ownership of C handles: one owner each, released by the library's own destroy function.
#include <unistd.h>

#include <memory>
#include <utility>

namespace flowtop {

template <auto Destroy>
struct Deleter {
    template <typename T>
    void operator()(T* p) const noexcept {
        if (p) Destroy(p);
    }
};

template <typename T, auto Destroy>
using CPtr = std::unique_ptr<T, Deleter<Destroy>>;

// A file descriptor with one owner.
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

}  // namespace flowtop
