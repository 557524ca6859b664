#include "alert_book.hpp"

#include <algorithm>

namespace flowtop::detect {
namespace {
constexpr std::uint64_t k_ns = 1'000'000'000ull;
}

table::Alert* AlertBook::working(std::uint64_t id) {
    if (auto it = changed_.find(id); it != changed_.end()) return it->second.get();
    if (alerts_.empty() || id < alerts_.front()->id || id > alerts_.back()->id) return nullptr;
    const auto& current = alerts_[id - alerts_.front()->id];
    auto copy = std::make_shared<table::Alert>(*current);
    auto* raw = copy.get();
    changed_.emplace(id, std::move(copy));
    return raw;
}

bool AlertBook::is_open(std::uint64_t id, std::uint64_t now_ns) const {
    if (alerts_.empty() || id < alerts_.front()->id) return false;
    std::uint64_t last = 0;
    if (auto it = changed_.find(id); it != changed_.end())
        last = it->second->last_ns;
    else if (id <= alerts_.back()->id)
        last = alerts_[id - alerts_.front()->id]->last_ns;
    else
        return false;
    return last + static_cast<std::uint64_t>(config_.fold.count()) * k_ns >= now_ns;
}

table::Alert* AlertBook::touch(std::uint64_t id, std::uint64_t now_ns) {
    if (!id || !is_open(id, now_ns)) return nullptr;
    table::Alert* a = working(id);
    if (a) a->last_ns = std::max(a->last_ns, now_ns);
    return a;
}

table::Alert* AlertBook::open(const std::string& key, std::uint64_t now_ns) {
    auto it = open_.find(key);
    if (it == open_.end()) return nullptr;
    if (!is_open(it->second, now_ns)) {
        open_.erase(it);
        return nullptr;
    }
    return working(it->second);
}

table::Alert& AlertBook::raise(table::AlertKind kind, const std::string& key, std::uint64_t now_ns,
                               bool& created) {
    if (table::Alert* a = open(key, now_ns)) {
        created = false;
        a->last_ns = std::max(a->last_ns, now_ns);
        return *a;
    }
    created = true;
    auto alert = std::make_shared<table::Alert>();
    alert->id = next_id_++;
    alert->kind = kind;
    alert->first_ns = alert->last_ns = now_ns;
    auto* raw = alert.get();
    alerts_.push_back(alert);  // a placeholder version; publish() replaces it
    changed_.emplace(raw->id, std::move(alert));
    open_[key] = raw->id;
    while (alerts_.size() > config_.max_alerts) {
        changed_.erase(alerts_.front()->id);
        alerts_.pop_front();
        ++dropped_;
    }
    return *working(raw->id);
}

void AlertBook::evidence(table::Alert& alert, ct::FlowKey flow) {
    if (alert.flows.size() < table::k_alert_samples &&
        std::find(alert.flows.begin(), alert.flows.end(), flow) == alert.flows.end())
        alert.flows.push_back(flow);
    // Marking writes the row (and unshares its chunk): bounded per tick, so a flood of
    // evidence costs the writer what a few thousand changed rows cost.
    if (marks_.size() < k_max_marks)
        marks_.emplace_back(flow, static_cast<std::uint32_t>(alert.id));
}

void AlertBook::close_quiet(std::uint64_t now_ns) {
    // Forget fold keys of alerts gone quiet (their alerts stay in the log), once a second.
    if (now_ns < last_close_ns_ + k_ns) return;
    last_close_ns_ = now_ns;
    std::erase_if(open_, [&](const auto& kv) { return !is_open(kv.second, now_ns); });
}

void AlertBook::publish(std::uint64_t now_ns, std::uint64_t evictions, std::uint64_t tracked) {
    marks_.clear();
    close_quiet(now_ns);
    if (changed_.empty() && evictions == log_evictions_ && tracked == log_tracked_) return;
    if (!alerts_.empty()) {
        // Versions in id order, so a reader sees alerts raised in one tick in their order.
        std::vector<std::uint64_t> ids;
        ids.reserve(changed_.size());
        for (const auto& [id, a] : changed_) ids.push_back(id);
        std::sort(ids.begin(), ids.end());
        for (const auto id : ids) {
            if (id < alerts_.front()->id) continue;
            auto& a = changed_[id];
            a->seq = ++seq_;
            alerts_[id - alerts_.front()->id] = std::move(a);
        }
    }
    changed_.clear();
    auto log = std::make_shared<table::AlertLog>();
    log->seq = seq_;
    log->raised = next_id_ - 1;
    log->dropped = dropped_;
    log->evictions = log_evictions_ = evictions;
    log->tracked = log_tracked_ = tracked;
    log->alerts.assign(alerts_.begin(), alerts_.end());
    log_ = std::move(log);
}

}  // namespace flowtop::detect
