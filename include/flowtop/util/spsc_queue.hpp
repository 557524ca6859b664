#pragma once
// A bounded lock-free ring between one producer thread and one consumer thread: the writer
// posts to its enrichment workers and drains their answers without ever waiting on them.
#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

namespace flowtop {

// push fails when full, pop when empty; neither blocks.
template <typename T>
class SpscQueue {
  public:
    explicit SpscQueue(std::size_t capacity) : slots_(capacity + 1) {}
    bool push(T&& v) noexcept {
        auto tail = tail_.load(std::memory_order_relaxed);
        auto next = (tail + 1) % slots_.size();
        if (next == head_.load(std::memory_order_acquire)) return false;
        slots_[tail] = std::move(v);
        tail_.store(next, std::memory_order_release);
        return true;
    }
    bool pop(T& out) noexcept {
        auto head = head_.load(std::memory_order_relaxed);
        if (head == tail_.load(std::memory_order_acquire)) return false;
        out = std::move(slots_[head]);
        head_.store((head + 1) % slots_.size(), std::memory_order_release);
        return true;
    }

  private:
    std::vector<T> slots_;
    alignas(64) std::atomic<std::size_t> head_{0};
    alignas(64) std::atomic<std::size_t> tail_{0};
};

}  // namespace flowtop
