#include "flowtop/table/snapshot.hpp"

namespace flowtop::table {

void SnapshotHub::publish(SnapshotPtr snapshot) {
    latest_.store(std::move(snapshot), std::memory_order_release);
    { std::lock_guard lock(mutex_); }
    cv_.notify_all();
}

SnapshotPtr SnapshotHub::wait_newer(std::uint64_t seq, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] {
        auto s = latest();
        return closed_.load() || (s && s->stats.seq > seq);
    });
    return latest();
}

void SnapshotHub::close() {
    closed_.store(true);
    { std::lock_guard lock(mutex_); }
    cv_.notify_all();
}

}  // namespace flowtop::table
