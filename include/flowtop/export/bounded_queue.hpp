#pragma once
// The hand-over from the writer's tick hooks to an exporter's own thread. The writer appends a
// tick's items under a lock that the consumer holds only to swap the buffer out, so the writer
// never waits for a slow collector, disk or network: what does not fit is dropped and counted.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <vector>

namespace flowtop::exporters {

template <typename T>
class BoundedQueue {
  public:
    explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) { items_.reserve(64); }

    // Writer side: appends what fits; returns how many were dropped.
    template <typename It>
    std::size_t push(It first, It last) {
        std::size_t dropped = 0;
        {
            std::lock_guard lock(mutex_);
            for (; first != last; ++first) {
                if (items_.size() >= capacity_) {
                    ++dropped;
                    continue;
                }
                items_.push_back(*first);
            }
        }
        if (dropped) dropped_.fetch_add(dropped, std::memory_order_relaxed);
        cv_.notify_one();
        return dropped;
    }

    // Consumer side: waits up to `timeout` for items and takes them all (out is swapped).
    void pop_all(std::vector<T>& out, std::chrono::milliseconds timeout, std::stop_token stop) {
        out.clear();
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, stop, timeout, [&] { return !items_.empty(); });
        out.swap(items_);
    }

    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    std::size_t capacity() const noexcept { return capacity_; }

  private:
    const std::size_t capacity_;
    std::mutex mutex_;
    std::condition_variable_any cv_;
    std::vector<T> items_;
    std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace flowtop::exporters
