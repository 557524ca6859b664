#include "flowtop/table/collector.hpp"

#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <mutex>

#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop::table {

std::uint64_t realtime_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

Collector::Collector(ct::ConntrackIo& io, SnapshotHub& hub, CollectorConfig config)
    : io_(io),
      hub_(hub),
      config_(config),
      strings_(std::make_shared<StringPool>()),
      buffer_(std::size_t{1} << 20) {
    stats_.acct_on = config.acct_on;
    stats_.timestamp_on = config.timestamp_on;
}

Collector::~Collector() = default;

void Collector::handle_events(std::span<const std::byte> bytes) {
    const auto now = realtime_ns();
    auto result = parser_.parse(bytes, [&](const ct::FlowRecord& r) { table_.apply(r, now); });
    stats_.events += result.flows;
    stats_.parse_errors += result.errors;
}

std::size_t Collector::drain_events() {
    const auto deadline = std::chrono::steady_clock::now() + config_.event_budget;
    std::size_t datagrams = 0;
    for (;;) {
        auto r = io_.recv_events(buffer_);
        if (r.error == EAGAIN || r.error == EWOULDBLOCK) break;
        if (r.error == EINTR) continue;
        if (r.error == ENOBUFS) {
            // The kernel dropped events: the table may miss creations and destructions. Only a
            // full dump tells the truth again.
            ++stats_.lost_events;
            need_resync_ = true;
            continue;
        }
        if (r.error) break;  // counted as nothing; the next dump reconciles
        handle_events(std::span(buffer_.data(), r.bytes));
        ++datagrams;
        if (std::chrono::steady_clock::now() >= deadline) break;
    }
    return datagrams;
}

namespace {
double thread_cpu_s() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
}  // namespace

void Collector::full_dump(bool resync) {
    const auto started = std::chrono::steady_clock::now();
    const double cpu_started = thread_cpu_s();
    io_.start_dump();
    table_.begin_sweep();
    bool complete = false;
    std::size_t flows = 0;
    while (!complete) {
        auto r = io_.recv_dump(buffer_);
        if (r.error == EINTR) continue;
        if (r.error == ENOBUFS) {
            // The dump itself overran: it is incomplete, so nothing may be declared gone.
            need_resync_ = true;
            return;
        }
        if (r.error) throw Error(errno_message("cannot read the conntrack table", r.error));
        const auto now = realtime_ns();
        auto result = parser_.parse(std::span<const std::byte>(buffer_.data(), r.bytes),
                                    [&](const ct::FlowRecord& rec) { table_.apply(rec, now); });
        flows += result.flows;
        stats_.parse_errors += result.errors;
        if (result.netlink_error) {
            need_resync_ = true;
            return;
        }
        complete = result.done;
    }
    table_.end_sweep(realtime_ns());
    ++stats_.dumps;
    if (resync) ++stats_.resyncs;
    if (stats_.dumps == 1) stats_.empty_at_start = flows == 0;
    need_resync_ = false;
    stats_.last_dump_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    // Thread CPU time counts the kernel's work for our recv calls too: the true cost.
    const double cost_s = thread_cpu_s() - cpu_started;
    const double tick_s = std::chrono::duration<double>(config_.interval).count();
    const double budget_s = config_.sweep_cpu_share * tick_s;
    const auto max_ticks =
        std::max<long>(1, static_cast<long>(config_.max_sweep_gap / config_.interval));
    const auto ticks = budget_s > 0 ? static_cast<long>(std::ceil(cost_s / budget_s)) : 1;
    sweep_every_ = static_cast<unsigned>(std::clamp<long>(ticks, 1, max_ticks));
    if (config_.fixed_sweep_gap.count() > 0)
        sweep_every_ = static_cast<unsigned>(
            std::max<long>(1, static_cast<long>(config_.fixed_sweep_gap / config_.interval)));
    stats_.sweep_interval_s = sweep_every_ * tick_s;
    ticks_since_sweep_ = 0;
    // Chunks unshared during a sweep are freed once readers move on, but glibc keeps freed
    // heap pages; handing them back keeps RSS at what the table really holds.
    if (table_.size() >= 10000) malloc_trim(0);
}

bool Collector::refresh_busy() {
    busy_.clear();
    table_.collect_busy(busy_, config_.acct_on);
    if (busy_.size() > config_.max_refresh) return false;
    stats_.refreshed = busy_.size();
    // Batches small enough that their answers fit the socket buffer before we read them.
    constexpr std::size_t k_batch = 512;
    for (std::size_t at = 0; at < busy_.size(); at += k_batch) {
        const std::size_t n = std::min(k_batch, busy_.size() - at);
        const std::uint32_t first_seq = request_seq_;
        request_seq_ += static_cast<std::uint32_t>(n);
        if (!io_.request_flows(std::span(busy_).subspan(at, n), first_seq)) return false;
        std::size_t answers = 0;
        while (answers < n) {
            auto r = io_.recv_dump(buffer_);
            if (r.error == EINTR) continue;
            if (r.error) return false;
            const auto now = realtime_ns();
            auto result = parser_.parse(std::span<const std::byte>(buffer_.data(), r.bytes),
                                        [&](const ct::FlowRecord& rec) { table_.apply(rec, now); });
            answers += result.answers;
            for (const auto& refused : parser_.refused()) {
                const std::uint32_t index = refused.seq - first_seq;
                if (refused.error == ENOENT && index < n) table_.mark_gone(busy_[at + index].id, now);
            }
        }
    }
    return true;
}

void Collector::refresh() {
    ++ticks_since_sweep_;
    stats_.refreshed = 0;
    if (need_resync_ || ticks_since_sweep_ >= sweep_every_ || !refresh_busy()) full_dump(need_resync_);
}

void Collector::publish() {
    const auto now = std::chrono::steady_clock::now();
    const double dt = last_tick_ == std::chrono::steady_clock::time_point{}
                          ? 0.0
                          : std::chrono::duration<double>(now - last_tick_).count();
    last_tick_ = now;
    const auto now_ns = realtime_ns();
    table_.tick(now_ns);
    for (auto* hook : hooks_) hook->on_tick(table_, *strings_, now_ns);

    auto snap = std::make_shared<Snapshot>();
    ++stats_.seq;
    stats_.time_ns = now_ns;
    stats_.interval_s = dt;
    snap->stats = stats_;
    snap->rows = table_.rows();  // chunk pointers only: copy-on-write from here on
    snap->strings = strings_;
    hub_.publish(snap);
    table_.drop_gone();
}

void Collector::run(std::stop_token stop) {
    UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    std::stop_callback on_stop(stop, [&] {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = write(wake.get(), &one, sizeof one);
    });

    drain_events();
    full_dump(false);
    drain_events();
    publish();
    auto next_tick = std::chrono::steady_clock::now() + config_.interval;

    while (!stop.stop_requested()) {
        auto now = std::chrono::steady_clock::now();
        if (now >= next_tick) {
            drain_events();
            try {
                refresh();
            } catch (const std::exception&) {
                // A failed refresh is retried next tick; the frame goes out with what we have.
                need_resync_ = true;
            }
            drain_events();
            publish();
            next_tick += config_.interval;
            if (next_tick < now) next_tick = now + config_.interval;  // fell behind: don't burst
            continue;
        }
        if (need_resync_) {
            drain_events();
            try {
                full_dump(true);
            } catch (const std::exception&) {
                need_resync_ = false;  // the next tick's dump tries again
            }
            continue;
        }
        pollfd fds[2] = {{io_.event_fd(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now).count();
        int n = poll(fds, 2, static_cast<int>(wait) + 1);
        if (n > 0 && (fds[0].revents & (POLLIN | POLLERR))) drain_events();
    }
}

}  // namespace flowtop::table
