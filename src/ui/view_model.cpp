#include "flowtop/ui/view_model.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/table_pressure.hpp"

namespace flowtop::ui {

namespace {
constexpr std::pair<SortKey, const char*> k_sort_names[] = {
    {SortKey::rate, "rate"},
    {SortKey::orig_rate, "orig_rate"},
    {SortKey::reply_rate, "reply_rate"},
    {SortKey::bytes, "bytes"},
    {SortKey::orig_bytes, "orig_bytes"},
    {SortKey::reply_bytes, "reply_bytes"},
    {SortKey::age, "age"},
    {SortKey::proto, "proto"},
    {SortKey::state, "state"},
    {SortKey::src, "src"},
    {SortKey::dst, "dst"},
    {SortKey::dport, "dport"},
    {SortKey::process, "process"},
    {SortKey::country, "country"},
    {SortKey::flows, "flows"},
};

std::uint64_t bytes_of(const table::FlowRow& r, bool orig) {
    if (!r.has_counters()) return 0;
    return orig ? r.ct.orig_counters.bytes : r.ct.reply_counters.bytes;
}

// Larger-is-first keys compare descending by default; names ascending.
bool descending_by_default(SortKey k) {
    switch (k) {
        case SortKey::rate:
        case SortKey::orig_rate:
        case SortKey::reply_rate:
        case SortKey::bytes:
        case SortKey::orig_bytes:
        case SortKey::reply_bytes:
        case SortKey::age:
        case SortKey::flows:
            return true;
        default:
            return false;
    }
}

}  // namespace

const std::vector<SortKey>& sort_keys() {
    static const std::vector<SortKey> keys = [] {
        std::vector<SortKey> k;
        for (auto& [key, name] : k_sort_names) k.push_back(key);
        return k;
    }();
    return keys;
}

const char* sort_key_name(SortKey key) {
    for (auto& [k, name] : k_sort_names)
        if (k == key) return name;
    return "?";
}

std::optional<SortKey> parse_sort_key(std::string_view name) {
    for (auto& [k, n] : k_sort_names)
        if (name == n) return k;
    return std::nullopt;
}

const char* rate_window_key(RateWindow w) {
    switch (w) {
        case RateWindow::tick:
            return "tick";
        case RateWindow::s2:
            return "2s";
        case RateWindow::s10:
            return "10s";
        case RateWindow::s40:
            return "40s";
    }
    return "tick";
}

std::optional<RateWindow> parse_rate_window(std::string_view key) {
    for (auto w : {RateWindow::tick, RateWindow::s2, RateWindow::s10, RateWindow::s40})
        if (key == rate_window_key(w)) return w;
    return std::nullopt;
}

const char* rate_window_name(RateWindow w) {
    switch (w) {
        case RateWindow::tick:
            return "last tick";
        case RateWindow::s2:
            return "2 s";
        case RateWindow::s10:
            return "10 s";
        case RateWindow::s40:
            return "40 s";
    }
    return "?";
}

double orig_rate_of(const table::FlowRow& r, RateWindow w) {
    if (!r.rate_known) return 0;
    return w == RateWindow::tick ? r.orig_rate : r.orig_rate_avg[static_cast<int>(w)];
}

double reply_rate_of(const table::FlowRow& r, RateWindow w) {
    if (!r.rate_known) return 0;
    return w == RateWindow::tick ? r.reply_rate : r.reply_rate_avg[static_cast<int>(w)];
}

namespace {

// A strict total order for one sort setting: ties fall back to the conntrack id, so rows never
// jitter between frames.
struct RowOrder {
    const table::Snapshot& snap;
    SortKey key;
    bool desc;
    RateWindow w;

    // Keys that are one number per row: sorted by that number, worked out once per row.
    bool numeric() const noexcept {
        return key != SortKey::src && key != SortKey::dst && key != SortKey::process &&
               key != SortKey::country;
    }
    double number(const table::FlowRow& r) const {
        switch (key) {
            case SortKey::rate:
            case SortKey::flows:
                return orig_rate_of(r, w) + reply_rate_of(r, w);
            case SortKey::orig_rate:
                return orig_rate_of(r, w);
            case SortKey::reply_rate:
                return reply_rate_of(r, w);
            case SortKey::bytes:
                return static_cast<double>(bytes_of(r, true) + bytes_of(r, false));
            case SortKey::orig_bytes:
                return static_cast<double>(bytes_of(r, true));
            case SortKey::reply_bytes:
                return static_cast<double>(bytes_of(r, false));
            case SortKey::age:
                return r.age_s(snap.stats.time_ns);
            case SortKey::proto:
                return r.ct.proto;
            case SortKey::state:
                return r.ct.tcp_state;
            case SortKey::dport:
                return r.ct.orig.dport;
            default:
                return 0;
        }
    }

    int compare(const table::FlowRow* a, const table::FlowRow* b) const {
        auto three = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
        if (numeric()) return three(number(*a), number(*b));
        switch (key) {
            case SortKey::rate:
            case SortKey::flows:
                return three(orig_rate_of(*a, w) + reply_rate_of(*a, w),
                             orig_rate_of(*b, w) + reply_rate_of(*b, w));
            case SortKey::orig_rate:
                return three(orig_rate_of(*a, w), orig_rate_of(*b, w));
            case SortKey::reply_rate:
                return three(reply_rate_of(*a, w), reply_rate_of(*b, w));
            case SortKey::bytes:
                return three(bytes_of(*a, true) + bytes_of(*a, false),
                             bytes_of(*b, true) + bytes_of(*b, false));
            case SortKey::orig_bytes:
                return three(bytes_of(*a, true), bytes_of(*b, true));
            case SortKey::reply_bytes:
                return three(bytes_of(*a, false), bytes_of(*b, false));
            case SortKey::age:
                return three(a->age_s(snap.stats.time_ns), b->age_s(snap.stats.time_ns));
            case SortKey::proto:
                return three(a->ct.proto, b->ct.proto);
            case SortKey::state:
                return three(a->ct.tcp_state, b->ct.tcp_state);
            case SortKey::src:
                return three(a->ct.orig.src, b->ct.orig.src);
            case SortKey::dst:
                return three(a->ct.orig.dst, b->ct.orig.dst);
            case SortKey::dport:
                return three(a->ct.orig.dport, b->ct.orig.dport);
            case SortKey::process:
                return snap.str(a->comm).compare(snap.str(b->comm));
            case SortKey::country:
                return snap.str(a->dst_country).compare(snap.str(b->dst_country));
        }
        return 0;
    }
    bool operator()(const table::FlowRow* a, const table::FlowRow* b) const {
        const int c = compare(a, b);
        if (c != 0) return desc ? c > 0 : c < 0;
        return ct::flow_key(a->ct) < ct::flow_key(b->ct);
    }
};

RowOrder order_for(const table::Snapshot& snap, SortKey key, bool reverse, RateWindow w) {
    return RowOrder{snap, key, descending_by_default(key) != reverse, w};
}

// Sorts the first `first` rows by key_of(row) (then by flow key, as RowOrder does), with each
// row's key worked out once: at 100k rows a comparison that reads two rows (and works out their
// rates, or looks up their names) per step is most of a keypress's time (bench/keypress).
template <typename Key, typename KeyOf>
void sort_by(std::vector<const table::FlowRow*>& rows, std::size_t first, bool desc, KeyOf key_of) {
    struct Keyed {
        Key key;
        ct::FlowKey id;
        const table::FlowRow* row;
    };
    std::vector<Keyed> keyed;
    keyed.reserve(rows.size());
    for (const auto* r : rows) keyed.push_back({key_of(*r), ct::flow_key(r->ct), r});
    auto before = [desc](const Keyed& a, const Keyed& b) {
        if (a.key < b.key) return !desc;
        if (b.key < a.key) return desc;
        return a.id < b.id;
    };
    if (first == keyed.size())
        std::sort(keyed.begin(), keyed.end(), before);
    else
        std::partial_sort(keyed.begin(), keyed.begin() + static_cast<long>(first), keyed.end(),
                          before);
    for (std::size_t i = 0; i < keyed.size(); ++i) rows[i] = keyed[i].row;
}

}  // namespace

void sort_rows(std::vector<const table::FlowRow*>& rows, const table::Snapshot& snap, SortKey key,
               bool reverse, RateWindow w, std::size_t limit) {
    const RowOrder less = order_for(snap, key, reverse, w);
    const std::size_t first = std::min(limit, rows.size());
    switch (key) {
        case SortKey::src:
            return sort_by<Addr>(rows, first, less.desc,
                                 [](const table::FlowRow& r) { return r.ct.orig.src; });
        case SortKey::dst:
            return sort_by<Addr>(rows, first, less.desc,
                                 [](const table::FlowRow& r) { return r.ct.orig.dst; });
        case SortKey::process:
            return sort_by<std::string_view>(
                rows, first, less.desc, [&](const table::FlowRow& r) { return snap.str(r.comm); });
        case SortKey::country:
            return sort_by<std::string_view>(rows, first, less.desc, [&](const table::FlowRow& r) {
                return snap.str(r.dst_country);
            });
        default:
            return sort_by<double>(rows, first, less.desc,
                                   [&](const table::FlowRow& r) { return less.number(r); });
    }
}

Tab next_tab(Tab tab) {
    for (int i = 0; i < k_tab_count; ++i)
        if (k_tab_order[i] == tab) return k_tab_order[(i + 1) % k_tab_count];
    return Tab::flows;
}

const char* tab_name(Tab tab) {
    switch (tab) {
        case Tab::clients:
            return "Clients";
        case Tab::flows:
            return "Flows";
        case Tab::processes:
            return "Processes";
        case Tab::hosts:
            return "Hosts";
        case Tab::countries:
            return "Countries";
        case Tab::alerts:
            return "Alerts";
        case Tab::table:
            return "Table";
    }
    return "?";
}

void ViewModel::offer(table::SnapshotPtr snap) {
    if (!paused_ || !snap_) snap_ = std::move(snap);
}

bool ViewModel::set_filter(const std::string& text, FilterError* error) {
    FilterError e;
    auto parsed = FilterExpr::parse(text, &e);
    if (!e.message.empty()) {
        if (error) *error = e;
        return false;
    }
    filter_ = std::move(parsed);
    return true;
}

bool ViewModel::shown(const table::FlowRow& row) const {
    const auto& s = settings_;
    if (!s.command_line.matches(row)) return false;
    if (std::find(s.hidden_protos.begin(), s.hidden_protos.end(), row.ct.proto) !=
        s.hidden_protos.end())
        return false;
    if (s.active_only && orig_rate_of(row, s.window) + reply_rate_of(row, s.window) <= 0)
        return false;
    return filter_.matches(*snap_, row, &local_);
}

void ViewModel::refresh(std::size_t visible) {
    if (!snap_) {
        matched_.clear();
        sorted_.clear();
        groups_.clear();
        return;
    }
    const bool same_input =
        snap_.get() == last_snap_ && filter_.text() == last_filter_ && settings_ == last_settings_;
    if (!same_input) {
        matched_.clear();
        for (const auto& row : snap_->rows)
            if (shown(row)) matched_.push_back(&row);
        last_snap_ = snap_.get();
        last_filter_ = filter_.text();
        last_settings_ = settings_;
    }
    sorted_.clear();
    groups_.clear();
    if (settings_.tab != Tab::flows) {
        build_groups();
        pin_selection();
        if (selected_ < scroll_) scroll_ = selected_;
        if (visible && selected_ >= scroll_ + visible) scroll_ = selected_ - visible + 1;
        return;
    }
    // Where is the selected flow now? Its rank in the full order, without sorting everything.
    std::size_t want = std::min(matched_.size(), scroll_ + visible);
    if (selected_id_) {
        auto it = std::find_if(matched_.begin(), matched_.end(),
                               [&](auto* r) { return ct::flow_key(r->ct) == *selected_id_; });
        if (it != matched_.end()) {
            const table::FlowRow* target = *it;
            const RowOrder less =
                order_for(*snap_, settings_.sort, settings_.reverse, settings_.window);
            std::size_t rank = 0;
            for (const auto* r : matched_)
                if (less(r, target)) ++rank;
            selected_ = rank;
            if (selected_ < scroll_) scroll_ = selected_;
            if (visible && selected_ >= scroll_ + visible) scroll_ = selected_ - visible + 1;
            want = std::min(matched_.size(), scroll_ + visible);
        }
    }
    if (selected_ >= matched_.size()) selected_ = matched_.empty() ? 0 : matched_.size() - 1;
    if (scroll_ > selected_) scroll_ = selected_;
    sorted_ = matched_;
    sort_rows(sorted_, *snap_, settings_.sort, settings_.reverse, settings_.window, want);
    sorted_.resize(want);
    if (selected_ < sorted_.size()) selected_id_ = ct::flow_key(sorted_[selected_]->ct);
}

void ViewModel::build_alerts() {
    alerts_.clear();
    if (!snap_->alerts) return;
    const auto& log = snap_->alerts->alerts;
    for (auto it = log.rbegin(); it != log.rend(); ++it) {
        const auto& a = *it;
        if (cleared(a->id)) continue;
        Group g;
        g.key = "#" + std::to_string(a->id);
        g.filter = "alert:" + std::to_string(a->id);
        g.flows = a->count;
        g.detail = a->message;
        groups_.push_back(std::move(g));
        alerts_.push_back(a);
    }
}

const table::Alert* ViewModel::selected_alert() const {
    if (settings_.tab != Tab::alerts || selected_ >= alerts_.size()) return nullptr;
    return alerts_[selected_].get();
}

void ViewModel::acknowledge_all() {
    if (snap_ && snap_->alerts && !snap_->alerts->alerts.empty())
        acked_upto_ = snap_->alerts->alerts.back()->id;
}

void ViewModel::clear_all() {
    if (snap_ && snap_->alerts && !snap_->alerts->alerts.empty())
        cleared_upto_ = snap_->alerts->alerts.back()->id;
}

std::size_t ViewModel::unacknowledged() const {
    if (!snap_ || !snap_->alerts) return 0;
    std::size_t n = 0;
    for (const auto& a : snap_->alerts->alerts)
        if (!acknowledged(a->id) && !cleared(a->id)) ++n;
    return n;
}

void ViewModel::build_groups() {
    if (settings_.tab == Tab::alerts) return build_alerts();
    if (settings_.tab == Tab::table) {
        // Entries, not traffic: the table's consumers in their fixed order of kinds.
        for (auto& c : table_consumers(*snap_, matched_)) {
            Group g;
            g.key = c.key;
            g.filter = c.filter;
            g.flows = c.entries;
            g.detail = c.by;
            groups_.push_back(std::move(g));
        }
        return;
    }
    if (settings_.tab == Tab::clients) return build_clients();
    std::unordered_map<std::string, std::size_t> index;
    std::map<std::string, std::map<std::string, std::uint64_t>> processes_by_group;
    const auto& snap = *snap_;
    for (const auto* r : matched_) {
        std::string key, filter, scope;
        switch (settings_.tab) {
            case Tab::processes:
                if (r->pid) {
                    key = std::string(snap.str(r->comm)) + " (" + std::to_string(r->pid) + ")";
                    filter = "proc:" + std::string(snap.str(r->comm));
                } else if (r->forwarded) {
                    key = "forwarded";
                    filter = "dir:fwd";
                } else {
                    key = "unknown";
                }
                break;
            case Tab::hosts: {
                const auto& ct = r->ct;
                const bool src_local = local_.contains(ct.family, ct.orig.src);
                const Addr& remote = src_local                                 ? ct.orig.dst
                                     : local_.contains(ct.family, ct.orig.dst) ? ct.orig.src
                                                                               : ct.orig.dst;
                const std::string addr = remote.to_string(ct.family);
                const auto name =
                    &remote == &ct.orig.dst ? snap.str(r->dst_name) : snap.str(r->src_name);
                key = name.empty() ? addr : std::string(name) + " (" + addr + ")";
                filter = "host:" + addr;
                scope = local_.contains(ct.family, remote) ? "local"
                        : local_.is_lan(ct.family, remote) ? "LAN"
                                                           : "remote";
                break;
            }
            case Tab::countries: {
                auto cc = snap.str(r->dst_country);
                key = cc.empty() ? "??" : std::string(cc);
                if (!cc.empty()) filter = "cc:" + key;
                break;
            }
            case Tab::flows:
            case Tab::alerts:
            case Tab::table:
            case Tab::clients:
                return;
        }
        auto [it, inserted] = index.emplace(key, groups_.size());
        if (inserted) {
            Group g;
            g.key = key;
            g.filter = filter;
            g.scope = scope;
            groups_.push_back(std::move(g));
        }
        Group& g = groups_[it->second];
        ++g.flows;
        g.orig_bytes += bytes_of(*r, true);
        g.reply_bytes += bytes_of(*r, false);
        g.orig_rate += orig_rate_of(*r, settings_.window);
        g.reply_rate += reply_rate_of(*r, settings_.window);
        if (settings_.tab == Tab::countries) {
            if (g.name.empty()) g.name = std::string(snap.str(r->dst_country_name));
            auto comm = snap.str(r->comm);
            processes_by_group[key][comm.empty() ? "unknown" : std::string(comm)] +=
                bytes_of(*r, true) + bytes_of(*r, false);
        }
    }
    for (auto& g : groups_) {
        auto p = processes_by_group.find(g.key);
        if (p == processes_by_group.end()) continue;
        std::vector<std::pair<std::uint64_t, std::string>> top;
        for (auto& [name, bytes] : p->second) top.emplace_back(bytes, name);
        std::sort(top.rbegin(), top.rend());
        for (std::size_t i = 0; i < top.size() && i < 3; ++i)
            g.detail += (i ? ", " : "") + top[i].second;
    }
    sort_groups();
}

void ViewModel::build_clients() {
    for (auto& c : group_by_client(*snap_, matched_, local_, leases_)) {
        Group g;
        g.key = client_label(c);
        g.filter = "client:" + c.address;
        g.flows = c.flows;
        // The client's own directions: up is what it sends, down what it receives.
        g.orig_bytes = c.sent_bytes;
        g.reply_bytes = c.received_bytes;
        const auto w = settings_.window;
        g.orig_rate = w == RateWindow::tick ? c.sent_rate : c.sent_rate_avg[static_cast<int>(w)];
        g.reply_rate =
            w == RateWindow::tick ? c.received_rate : c.received_rate_avg[static_cast<int>(w)];
        for (std::size_t i = 0; i < c.destinations.size(); ++i)
            g.detail += (i ? ", " : "") + c.destinations[i];
        for (std::size_t i = 0; i < c.countries.size(); ++i)
            g.countries += (i ? " " : "") + c.countries[i];
        g.scope = c.local ? "local" : "LAN";
        groups_.push_back(std::move(g));
    }
    sort_groups();
}

void ViewModel::sort_groups() {
    const bool desc = descending_by_default(settings_.sort) != settings_.reverse;
    const SortKey key = settings_.sort;
    std::sort(groups_.begin(), groups_.end(), [&](const Group& a, const Group& b) {
        auto three = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
        int cmp = 0;
        switch (key) {
            case SortKey::flows:
                cmp = three(a.flows, b.flows);
                break;
            case SortKey::orig_rate:
                cmp = three(a.orig_rate, b.orig_rate);
                break;
            case SortKey::reply_rate:
                cmp = three(a.reply_rate, b.reply_rate);
                break;
            case SortKey::bytes:
                cmp = three(a.orig_bytes + a.reply_bytes, b.orig_bytes + b.reply_bytes);
                break;
            case SortKey::orig_bytes:
                cmp = three(a.orig_bytes, b.orig_bytes);
                break;
            case SortKey::reply_bytes:
                cmp = three(a.reply_bytes, b.reply_bytes);
                break;
            case SortKey::rate:
                cmp = three(a.orig_rate + a.reply_rate, b.orig_rate + b.reply_rate);
                break;
            default:
                cmp = -a.key.compare(b.key);
                break;  // names ascending
        }
        if (cmp != 0) return desc ? cmp > 0 : cmp < 0;
        return a.key < b.key;
    });
}

void ViewModel::pin_selection() {
    if (settings_.tab == Tab::flows) {
        if (selected_ < sorted_.size())
            selected_id_ = ct::flow_key(sorted_[selected_]->ct);
        else
            selected_id_.reset();
        return;
    }
    if (selected_key_) {
        for (std::size_t i = 0; i < groups_.size(); ++i)
            if (groups_[i].key == *selected_key_) selected_ = i;
    }
    if (selected_ >= groups_.size()) selected_ = groups_.empty() ? 0 : groups_.size() - 1;
    if (selected_ < groups_.size()) selected_key_ = groups_[selected_].key;
}

void ViewModel::move_selection(long delta, std::size_t visible) {
    const long count = static_cast<long>(line_count());
    if (count == 0) return;
    long next = static_cast<long>(selected_) + delta;
    next = std::clamp(next, 0L, count - 1);
    selected_ = static_cast<std::size_t>(next);
    if (selected_ < scroll_) scroll_ = selected_;
    if (visible && selected_ >= scroll_ + visible) scroll_ = selected_ - visible + 1;
    if (settings_.tab == Tab::flows) {
        // Beyond the sorted part the next refresh sorts further and pins the flow there.
        if (selected_ < sorted_.size())
            selected_id_ = ct::flow_key(sorted_[selected_]->ct);
        else
            selected_id_.reset();
    } else if (selected_ < groups_.size()) {
        selected_key_ = groups_[selected_].key;
    }
}

const table::FlowRow* ViewModel::selected_flow() const {
    if (settings_.tab != Tab::flows || selected_ >= sorted_.size()) return nullptr;
    return sorted_[selected_];
}

const Group* ViewModel::selected_group() const {
    if (settings_.tab == Tab::flows || selected_ >= groups_.size()) return nullptr;
    return &groups_[selected_];
}

}  // namespace flowtop::ui
