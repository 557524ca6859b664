#include "flowtop/detect/detector.hpp"

#include <mutex>
#include <optional>

#include "common.hpp"

namespace flowtop::detect {

struct Detectors::Impl {
    Impl(DetectConfig c, std::unique_ptr<LocalNet> l, DetectorEnv e)
        : config(std::move(c)), local(std::move(l)), env(e), book(config), exfil_d(config) {}

    Facts facts(const table::FlowRow& row, ct::FlowKey key) const {
        const auto& ct = row.ct;
        // With DNAT the host answers as the reply's source: it is the flow's local end.
        const bool dst_local =
            local->is_local(ct.orig.dst, ct.family) || local->is_local(ct.reply.src, ct.family);
        bool answered = true;
        if (ct.proto == IPPROTO_TCP)
            answered = !ct.has_status || (ct.status & IPS_ASSURED);
        else if (ct.proto == IPPROTO_UDP)
            answered = !ct.has_status || (ct.status & IPS_SEEN_REPLY);
        return Facts{row,
                     key,
                     local->is_local(ct.orig.src, ct.family),
                     dst_local,
                     local->is_inside(ct.orig.src, ct.family),
                     local->is_inside(ct.orig.dst, ct.family),
                     answered};
    }

    void flow(Ctx& c, const table::FlowRow& row, ct::FlowKey key, bool created) {
        const Facts f = facts(row, key);
        if (config.scan) scan.on_flow(c, f, created);
        if (config.flood) flood.on_flow(c, f, created);
        if (config.fanout) fanout.on_flow(c, f, created);
        if (config.exfil) exfil_d.on_flow(c, f);
        if (config.country || config.service) novelty.on_flow(c, f);
        if (config.long_lived || config.odd_port) age.on_flow(c, f);
    }

    std::uint64_t evictions() const {
        return scan.evictions + flood.evictions + fanout.evictions + exfil_d.evictions +
               novelty.evictions + age.evictions;
    }
    std::uint64_t tracked() const {
        return scan.tracked() + flood.tracked() + fanout.tracked() + exfil_d.tracked() +
               novelty.tracked() + age.tracked();
    }

    DetectConfig config;
    std::unique_ptr<LocalNet> local;
    DetectorEnv env;
    AlertBook book;
    ScanDetector scan;
    FloodDetector flood;
    FanoutDetector fanout;
    ExfilDetector exfil_d;
    NoveltyDetector novelty;
    AgeDetector age;
    std::uint64_t start_ns = 0;
    std::uint64_t next_expire_ns = 0;
    struct Changed {
        const table::FlowRow* row;
        ct::FlowKey key;
        bool created;
    };
    std::vector<Changed> batch;  // this tick's changed rows (capacity kept between ticks)
    std::mutex pending_mutex;    // reconfigure() (main thread) -> on_tick (writer)
    std::optional<DetectConfig> pending;
};

Detectors::Detectors(DetectConfig config, std::unique_ptr<LocalNet> local, DetectorEnv env)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(local), env)) {}

Detectors::~Detectors() = default;

const DetectConfig& Detectors::config() const noexcept { return impl_->config; }

std::chrono::milliseconds Detectors::full_pass_period() const noexcept {
    // Only flow age needs every row (an idle flow sends no change): a pass a minute, or a
    // quarter of long.after when that is shorter, so an alert comes at most that late.
    if (!impl_->config.long_lived) return std::chrono::milliseconds(0);
    const auto quarter =
        std::chrono::duration_cast<std::chrono::milliseconds>(impl_->config.long_after / 4);
    return std::clamp(quarter, std::chrono::milliseconds(1000), std::chrono::milliseconds(60000));
}

std::shared_ptr<const table::AlertLog> Detectors::alert_log() const { return impl_->book.log(); }

void Detectors::reconfigure(DetectConfig config) {
    std::lock_guard lock(impl_->pending_mutex);
    impl_->pending = std::move(config);
}

void Detectors::on_tick(table::TickContext& tick) {
    Impl& d = *impl_;
    {
        // The book and the detectors read d.config by reference: assigned in place, between
        // ticks, so no tick sees half of the old settings and half of the new.
        std::lock_guard lock(d.pending_mutex);
        if (d.pending) {
            d.config = std::move(*d.pending);
            d.pending.reset();
            d.exfil_d.set_allow(d.config);
        }
    }
    const std::uint64_t now = tick.now_ns();
    if (!d.start_ns) d.start_ns = now;
    d.local->refresh(now);
    Ctx c{d.book, tick.strings(), d.config, now, d.start_ns, d.env};
    const auto& ch = tick.changes();
    // Every row looked up first, then the detectors run over them: measured, a find between
    // two flows' detector work was a third of the detectors' time, each a cache miss in the
    // table's index waiting alone; back to back the lookups overlap. The pointers stay valid
    // until the marks below call enrich().
    d.batch.clear();
    for (const auto key : ch.created)
        if (const auto* row = tick.find(key)) d.batch.push_back({row, key, true});
    for (const auto key : ch.updated)
        if (const auto* row = tick.find(key)) d.batch.push_back({row, key, false});
    for (const auto& b : d.batch) d.flow(c, *b.row, b.key, b.created);
    if (d.config.long_lived) {
        // The rolling pass (1/60 of the table a tick at most): most rows are young and have
        // no process to check, and skip the facts (five address-set lookups) altogether.
        const double long_after = static_cast<double>(d.config.long_after.count());
        for (const auto key : tick.pass_keys())
            if (const auto* row = tick.find(key);
                row && ((!row->closed && row->age_s(now) >= long_after) ||
                        (d.config.odd_port && row->pid)))
                d.age.on_flow(c, d.facts(*row, key));
    }
    d.novelty.retry(
        c, [&](ct::FlowKey key) { return tick.find(key); },
        [&](const table::FlowRow& row, ct::FlowKey key) { return d.facts(row, key); });
    for (const auto key : ch.ended) {
        d.exfil_d.on_ended(key);
        d.age.on_ended(key);
    }
    d.scan.evaluate(c);
    d.flood.evaluate(c);
    if (now >= d.next_expire_ns) {
        // Sliding windows drop what they no longer cover; a few times a minute is enough.
        d.scan.expire(c);
        d.flood.expire(c);
        d.fanout.expire(c);
        d.exfil_d.expire(c);
        d.next_expire_ns = now + 5 * k_ns;
    }
    for (const auto& [key, id] : d.book.marks())
        tick.enrich(key, [id = id](table::FlowEnrichment& e) { e.alert = id; });
    d.book.publish(now, d.evictions(), d.tracked());
}

}  // namespace flowtop::detect
