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
#include "flowtop/util/os.hpp"

namespace flowtop::table {

std::uint64_t realtime_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

Collector::Collector(ct::ConntrackIo& io, SnapshotHub& hub, CollectorConfig config)
    : Collector(hub, config) {
    sources_.push_back(Source{.io = &io});
}

Collector::Collector(SnapshotHub& hub, CollectorConfig config)
    : hub_(hub),
      config_(config),
      strings_(std::make_shared<StringPool>()),
      buffer_(std::size_t{1} << 20) {
    stats_.acct_on = config.acct_on;
    stats_.timestamp_on = config.timestamp_on;
}

Collector::~Collector() = default;

std::uint16_t Collector::add_source(ct::ConntrackIo& io, const std::string& label) {
    auto free =
        std::find_if(sources_.begin(), sources_.end(), [](const Source& s) { return !s.io; });
    if (free == sources_.end()) {
        // Indexes are 16 bits: at most 0xffff sources, so a loop over them always ends.
        if (sources_.size() >= 0xffff) throw Error("too many network namespaces to watch");
        free = sources_.insert(sources_.end(), Source{});
    }
    *free = Source{.io = &io};
    const auto index = static_cast<std::uint16_t>(free - sources_.begin());
    table_.set_source_label(index, label.empty() ? k_no_string : strings_->intern(label));
    if (running_) {
        drain_source(*free);
        try {
            dump_source(index, false);
        } catch (const std::exception&) {
            sources_[index].need_resync = true;  // retried like any failed sweep
        }
    }
    return index;
}

void Collector::remove_source(std::uint16_t index) {
    if (index >= sources_.size() || !sources_[index].io) return;
    sources_[index] = Source{};
    table_.mark_source_gone(index, realtime_ns());
    table_.set_source_label(index, k_no_string);
}

std::size_t Collector::source_count() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(sources_.begin(), sources_.end(), [](const Source& s) { return s.io; }));
}

bool Collector::any_resync_needed() const noexcept {
    return std::any_of(sources_.begin(), sources_.end(),
                       [](const Source& s) { return s.io && s.need_resync; });
}

ct::ParseResult Collector::apply_messages(std::span<const std::byte> bytes, std::uint16_t source) {
    const auto now = realtime_ns();
    return parser_.parse(bytes, [&](const ct::FlowRecord& r) {
        if (source == 0) return table_.apply(r, now);  // no copy when watching one table
        ct::FlowRecord tagged = r;
        tagged.source = source;
        table_.apply(tagged, now);
    });
}

void Collector::handle_events(std::span<const std::byte> bytes, std::uint16_t source) {
    stats_.events += apply_messages(bytes, source).flows;
}

std::size_t Collector::drain_source(Source& source) {
    const auto index = static_cast<std::uint16_t>(&source - sources_.data());
    const auto deadline = std::chrono::steady_clock::now() + config_.event_budget;
    std::size_t datagrams = 0;
    for (;;) {
        auto r = source.io->recv_events(buffer_);
        if (r.error == EAGAIN || r.error == EWOULDBLOCK) break;
        if (r.error == EINTR) continue;
        if (r.error == ENOBUFS) {
            // The kernel dropped events: the table may miss creations and destructions. Only a
            // full dump tells the truth again.
            ++stats_.lost_events;
            source.need_resync = true;
            continue;
        }
        if (r.error) break;  // counted as nothing; the next dump reconciles
        handle_events(std::span(buffer_.data(), r.bytes), index);
        ++datagrams;
        if (std::chrono::steady_clock::now() >= deadline) break;
    }
    return datagrams;
}

std::size_t Collector::drain_events() {
    std::size_t datagrams = 0;
    for (auto& source : sources_)
        if (source.io) datagrams += drain_source(source);
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
    for (std::size_t i = 0; i < sources_.size(); ++i)
        if (sources_[i].io) dump_source(static_cast<std::uint16_t>(i), resync);
}

void Collector::dump_source(std::uint16_t index, bool resync) {
    Source& source = sources_[index];
    const double cpu_started = thread_cpu_s();
    source.io->start_dump();
    table_.begin_sweep();
    bool complete = false;
    std::size_t flows = 0;
    while (!complete) {
        auto r = source.io->recv_dump(buffer_);
        if (r.error == EINTR) continue;
        if (r.error == ENOBUFS) {
            // The dump itself overran: it is incomplete, so nothing may be declared gone.
            source.need_resync = true;
            return;
        }
        if (r.error) throw Error(errno_message("cannot read the conntrack table", r.error));
        auto result = apply_messages(std::span<const std::byte>(buffer_.data(), r.bytes), index);
        flows += result.flows;
        if (result.netlink_error) {
            source.need_resync = true;
            return;
        }
        complete = result.done;
    }
    table_.end_sweep(realtime_ns(), index);
    ++stats_.dumps;
    if (resync) ++stats_.resyncs;
    source.need_resync = false;
    // Thread CPU time counts the kernel's work for our recv calls too: the true cost. The
    // sources share one budget: the kernel walks its whole (global) conntrack hash for a dump
    // of any one namespace, so with many namespaces each dump costs about as much as the
    // host's whole table.
    const double cost_s = thread_cpu_s() - cpu_started;
    const double tick_s = std::chrono::duration<double>(config_.interval).count();
    const double budget_s = config_.sweep_cpu_share * tick_s /
                            static_cast<double>(std::max<std::size_t>(1, source_count()));
    const auto max_ticks =
        std::max<long>(1, static_cast<long>(config_.max_sweep_gap / config_.interval));
    const auto ticks = budget_s > 0 ? static_cast<long>(std::ceil(cost_s / budget_s)) : 1;
    source.sweep_every = static_cast<unsigned>(std::clamp<long>(ticks, 1, max_ticks));
    if (config_.fixed_sweep_gap.count() > 0)
        source.sweep_every = static_cast<unsigned>(
            std::max<long>(1, static_cast<long>(config_.fixed_sweep_gap / config_.interval)));
    source.ticks_since_sweep = 0;
    update_sweep_interval();
    // Chunks unshared during a sweep are freed once readers move on, but glibc keeps freed
    // heap pages; handing them back keeps RSS at what the table really holds.
    if (flows >= 10000) malloc_trim(0);
}

void Collector::update_sweep_interval() noexcept {
    unsigned longest = 0;
    for (const auto& s : sources_)
        if (s.io) longest = std::max(longest, s.sweep_every);
    stats_.sweep_interval_s = longest * std::chrono::duration<double>(config_.interval).count();
}

bool Collector::refresh_busy_of(std::uint16_t index, std::span<const ct::FlowRecord> busy) {
    ct::ConntrackIo& io = *sources_[index].io;
    // Batches small enough that their answers fit the socket buffer before we read them.
    constexpr std::size_t k_batch = 512;
    for (std::size_t at = 0; at < busy.size(); at += k_batch) {
        const std::size_t n = std::min(k_batch, busy.size() - at);
        const std::uint32_t first_seq = request_seq_;
        request_seq_ += static_cast<std::uint32_t>(n);
        if (!io.request_flows(busy.subspan(at, n), first_seq)) return false;
        std::size_t answers = 0;
        while (answers < n) {
            auto r = io.recv_dump(buffer_);
            if (r.error == EINTR) continue;
            if (r.error) return false;
            auto result =
                apply_messages(std::span<const std::byte>(buffer_.data(), r.bytes), index);
            const auto now = realtime_ns();
            answers += result.answers;
            for (const auto& refused : parser_.refused()) {
                const std::uint32_t i = refused.seq - first_seq;
                if (refused.error == ENOENT && i < n)
                    table_.mark_gone(ct::flow_key(busy[at + i]), now);
            }
        }
    }
    return true;
}

std::size_t Collector::refresh_limit() const noexcept {
    // A GET is one hash lookup in the kernel, a sweep walks every entry: GETs win until the
    // busy flows are a good share of the table.
    return std::max(config_.max_refresh, table_.size() / 4);
}

bool Collector::refresh_busy() {
    busy_.clear();
    table_.collect_busy(busy_, config_.acct_on);
    std::erase_if(busy_, [&](const ct::FlowRecord& r) {
        return r.source >= sources_.size() || !sources_[r.source].io ||
               sources_[r.source].sweep_now;
    });
    if (busy_.size() > refresh_limit()) return false;
    // Grouped by source, each source's flows in one run of batches on its own socket.
    std::stable_sort(busy_.begin(), busy_.end(),
                     [](const auto& a, const auto& b) { return a.source < b.source; });
    bool all = true;
    for (std::size_t at = 0; at < busy_.size();) {
        const auto source = busy_[at].source;
        std::size_t end = at;
        while (end < busy_.size() && busy_[end].source == source) ++end;
        if (!refresh_busy_of(source, std::span(busy_).subspan(at, end - at))) {
            sources_[source].sweep_now = true;
            all = false;
        }
        at = end;
    }
    return all;
}

void Collector::refresh() {
    bool sweep_all = false;
    for (auto& s : sources_) {
        if (!s.io) continue;
        ++s.ticks_since_sweep;
        s.sweep_now = s.need_resync || s.ticks_since_sweep >= s.sweep_every;
    }
    if (!refresh_busy()) {
        // Too many busy flows for GETs to be cheaper, or the source refused them.
        sweep_all = busy_.size() > refresh_limit();
    }
    for (std::size_t n = 0; n < sources_.size(); ++n) {
        const auto i = static_cast<std::uint16_t>(n);
        Source& s = sources_[i];
        if (!s.io || !(s.sweep_now || sweep_all)) continue;
        s.sweep_now = false;
        try {
            dump_source(i, s.need_resync);
        } catch (const std::exception&) {
            // A failed sweep is retried next tick; the frame goes out with what we have.
            s.need_resync = true;
        }
    }
}

void Collector::read_table_stats(double dt, std::vector<NetnsTableUse>& use) {
    stats_.ct_known = false;
    stats_.ct_count = stats_.ct_max = stats_.ct_buckets = 0;
    stats_.ct_fullest = 0;
    stats_.ct_counters = {};
    std::fill(std::begin(stats_.ct_counter_rate), std::end(stats_.ct_counter_rate), 0.0);
    stats_.ct_dropping = false;
    for (std::size_t n = 0; n < sources_.size(); ++n) {
        Source& s = sources_[n];
        if (!s.io) continue;
        ct::TableStats now;
        if (!s.io->read_table_stats(now)) {
            s.have_table_stats = false;
            continue;
        }
        stats_.ct_known = true;
        stats_.ct_count += now.count;
        stats_.ct_max = std::max(stats_.ct_max, now.max);
        stats_.ct_buckets = std::max(stats_.ct_buckets, now.buckets);
        if (now.max > 0)
            stats_.ct_fullest = std::max(
                stats_.ct_fullest, static_cast<double>(now.count) / static_cast<double>(now.max));
        for (std::size_t i = 0; i < ct::k_kernel_counter_count; ++i) {
            const auto value = ct::counter_at(now.counters, i);
            ct::counter_at(stats_.ct_counters, i) += value;
            // A rate needs two readings of the same namespace; a CPU going offline may take
            // its share away, so a counter that went down is no rise.
            if (!s.have_table_stats) continue;
            const auto before = ct::counter_at(s.table_stats.counters, i);
            if (value <= before) continue;
            if (dt > 0) stats_.ct_counter_rate[i] += static_cast<double>(value - before) / dt;
            // insert_failed, drop, early_drop: entries or packets the table had no room for.
            if (i == 2 || i == 3 || i == 4) stats_.ct_dropping = true;
        }
        s.table_stats = now;
        s.have_table_stats = true;
        use.push_back(
            {table_.source_label(static_cast<std::uint16_t>(n)), now.count, now.max, now.counters});
    }
}

void Collector::publish() {
    const auto now = std::chrono::steady_clock::now();
    const double dt = last_tick_ == std::chrono::steady_clock::time_point{}
                          ? 0.0
                          : std::chrono::duration<double>(now - last_tick_).count();
    last_tick_ = now;
    const auto now_ns = realtime_ns();
    hooks_.run(table_, *strings_, now_ns, config_.interval);

    auto snap = std::make_shared<Snapshot>();
    ++stats_.seq;
    stats_.time_ns = now_ns;
    stats_.interval_s = dt;
    stats_.sources = static_cast<std::uint32_t>(source_count());
    stats_.events_per_s = dt > 0 ? static_cast<double>(stats_.events - last_events_) / dt : 0.0;
    last_events_ = stats_.events;
    const TableTotals& totals = table_.totals();
    std::copy(std::begin(totals.flows_by_proto), std::end(totals.flows_by_proto),
              stats_.flows_by_proto);
    stats_.offloaded_flows = totals.offloaded_flows;
    stats_.orig_bytes_total = totals.departed_orig_bytes + totals.live_orig_bytes;
    stats_.reply_bytes_total = totals.departed_reply_bytes + totals.live_reply_bytes;
    for (int w = 0; w < 4; ++w) {
        // Sums kept by adding and taking away may end a hair below zero.
        stats_.orig_rate[w] = std::max(0.0, totals.orig_rate[w]);
        stats_.reply_rate[w] = std::max(0.0, totals.reply_rate[w]);
    }
    stats_.orig_rate_peak = std::max(stats_.orig_rate_peak, stats_.orig_rate[0]);
    stats_.reply_rate_peak = std::max(stats_.reply_rate_peak, stats_.reply_rate[0]);
    read_table_stats(dt, snap->table_use);
    snap->stats = stats_;
    snap->rows = table_.rows();  // chunk pointers only: copy-on-write from here on
    snap->strings = strings_;
    if (alert_source_) snap->alerts = alert_source_->alert_log();
    hub_.publish(snap);
    table_.drop_gone();
}

void Collector::run(std::stop_token stop) {
    UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    std::stop_callback on_stop(stop, [&] {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = write(wake.get(), &one, sizeof one);
    });

    if (watcher_) watcher_->update_sources(*this);
    drain_events();
    for (std::size_t n = 0; n < sources_.size(); ++n) {
        const auto i = static_cast<std::uint16_t>(n);
        if (!sources_[i].io) continue;
        try {
            dump_source(i, false);
        } catch (const std::exception&) {
            // One table: a setup error for the user. One of many namespaces: retried later.
            if (!watcher_) throw;
            sources_[i].need_resync = true;
        }
    }
    stats_.empty_at_start = table_.size() == 0;
    drain_events();
    publish();
    running_ = true;
    auto next_tick = std::chrono::steady_clock::now() + config_.interval;

    std::vector<pollfd> fds;
    while (!stop.stop_requested()) {
        auto now = std::chrono::steady_clock::now();
        if (now >= next_tick) {
            if (watcher_) watcher_->update_sources(*this);
            drain_events();
            refresh();
            drain_events();
            publish();
            next_tick += config_.interval;
            if (next_tick < now) next_tick = now + config_.interval;  // fell behind: don't burst
            continue;
        }
        if (any_resync_needed()) {
            drain_events();
            for (std::size_t n = 0; n < sources_.size(); ++n) {
                const auto i = static_cast<std::uint16_t>(n);
                if (!sources_[i].io || !sources_[i].need_resync) continue;
                try {
                    dump_source(i, true);
                } catch (const std::exception&) {
                    sources_[i].need_resync = false;  // the next tick's sweep tries again
                    sources_[i].sweep_now = true;
                    sources_[i].ticks_since_sweep = sources_[i].sweep_every;
                }
            }
            continue;
        }
        fds.clear();
        fds.push_back({wake.get(), POLLIN, 0});
        for (const auto& s : sources_)
            if (s.io) fds.push_back({s.io->event_fd(), POLLIN, 0});
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now).count();
        int n = os::poll(fds.data(), fds.size(), static_cast<int>(wait) + 1);
        if (n <= 0) continue;
        bool events = false;
        for (std::size_t i = 1; i < fds.size(); ++i)
            events |= (fds[i].revents & (POLLIN | POLLERR)) != 0;
        if (events) drain_events();
    }
}

}  // namespace flowtop::table
