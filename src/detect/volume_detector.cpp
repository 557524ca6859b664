// Volume: one local source opening many flows to one remote service (DDoS participation), or
// sending many bytes out of the site (exfiltration). Both count only what changed this tick.
#include "common.hpp"

namespace flowtop::detect {

// ---- fan-out -----------------------------------------------------------------------------

std::pair<std::uint32_t, std::uint32_t> FanoutDetector::Sketch::add(std::uint64_t h,
                                                                    std::uint64_t now_ns,
                                                                    std::uint64_t window_ns) {
    if (cur.empty()) {
        cur.assign(k_rows * k_width, 0);
        prev.assign(k_rows * k_width, 0);
        start_ns = now_ns;
    }
    if (now_ns >= start_ns + window_ns) {
        // A new window: the one before it is kept whole, older ones are gone.
        if (now_ns < start_ns + 2 * window_ns)
            cur.swap(prev);
        else
            std::fill(prev.begin(), prev.end(), 0);
        std::fill(cur.begin(), cur.end(), 0);
        adds = 0;
        start_ns = now_ns - (now_ns - start_ns) % window_ns;
    }
    ++adds;
    std::uint32_t in_window = UINT32_MAX, seen = UINT32_MAX;
    // Four 12-bit slices of one 64-bit hash, mixed first so that similar keys spread.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    for (std::size_t r = 0; r < k_rows; ++r) {
        const std::size_t i = r * k_width + ((h >> (12 * r)) & (k_width - 1));
        if (cur[i] < UINT16_MAX) ++cur[i];
        in_window = std::min<std::uint32_t>(in_window, cur[i]);
        seen = std::min<std::uint32_t>(seen, std::uint32_t{cur[i]} + prev[i]);
    }
    const auto others = static_cast<std::uint32_t>((adds - 1) / k_width);
    return {in_window > others ? in_window - others : 1, seen};
}

void FanoutDetector::on_flow(Ctx& c, const Facts& f, bool created) {
    if (!created || !f.outbound() || !f.leaves()) return;
    const auto& ct = f.row.ct;
    const std::uint64_t window = ns_of(c.config.fanout_window);
    // Keyed by address, not pid: attribution may name the process a tick late, and a split
    // count would hide the burst. The alert names the process when the row knows it.
    Key key{};
    key.src = ct.orig.src;
    key.dst = ct.orig.dst;
    key.family = ct.family;
    key.proto = ct.proto;
    key.dport = ct.orig.dport;
    key.source = ct.source;
    auto last = [](const Entry& x) { return x.last_ns; };
    const auto [in_window, seen] = sketch_.add(BytesHash<Key>{}(key), c.now_ns, window);
    const std::uint32_t promote = std::max<std::uint32_t>(2, c.config.fanout_flows / 4);
    Entry* tracked = nullptr;
    if (seen >= promote) {
        auto it = keys_.find(key);
        if (it == keys_.end()) {
            evictions += keys_order_.make_room(keys_, c.config.max_tracked, c.now_ns, last);
            keys_order_.added(key, c.now_ns);
            it = keys_.try_emplace(key).first;
            // The flows the sketch counted before the key was tracked (this one included).
            it->second.count.add(c.now_ns, window, in_window > 0 ? in_window - 1 : 0);
        }
        tracked = &it->second;
        tracked->count.add(c.now_ns, window, 1);
        tracked->last_ns = c.now_ns;
    }
    // The common case costs two hash lookups: text and fold keys only once a count is high,
    // and an open alert is found again by its id (the fold key is built when it opens).
    auto raise = [&](table::Alert* open, auto fold, std::uint64_t n, bool jump) {
        bool created_alert = false;
        table::Alert& a =
            open ? *open : c.book.raise(table::AlertKind::fan_out, fold(), c.now_ns, created_alert);
        if (created_alert) {
            a.severity = table::Severity::high;
            a.src = addr_text(ct.orig.src, ct.family);
            fill_context(c, a, f.row);
            a.first_ns = c.now_ns;
        }
        if (!a.pid && f.row.pid) fill_context(c, a, f.row);
        ++a.count;
        const bool grew = n > a.distinct;
        a.distinct = std::max(a.distinct, n);
        const std::size_t dsts = a.dsts.size();
        if (dsts < table::k_alert_samples) add_sample(a.dsts, addr_text(ct.orig.dst, ct.family));
        add_sample(a.ports, ct.orig.dport);
        c.book.evidence(a, f.key);
        // The sentence changes with the count or the destinations: not rebuilt otherwise.
        if (!created_alert && !grew && dsts == a.dsts.size()) return a.id;
        const std::string who = a.process.empty() ? a.src : a.src + " (" + a.process + ")";
        a.message = jump ? who + " jumped to " + std::to_string(a.distinct) + " new flows in " +
                               duration_text(window) + " (" + std::to_string(a.dsts.size()) +
                               "+ destinations)"
                         : who + " opened " + std::to_string(a.distinct) + " " +
                               ct::proto_name(ct.proto) + " flows to " + a.dsts.front() + ":" +
                               std::to_string(ct.orig.dport) + " within " + duration_text(window);
        return a.id;
    };
    if (tracked) {
        Entry& e = *tracked;
        const std::uint64_t n = e.count.estimate(c.now_ns, window);
        table::Alert* open = c.book.touch(e.alert, c.now_ns);
        if (open || n >= c.config.fanout_flows)
            e.alert = raise(
                open,
                [&] {
                    return "fan_out|" + std::to_string(ct.source) + "|" +
                           addr_text(ct.orig.src, ct.family) + "|" +
                           addr_text(ct.orig.dst, ct.family) + "|" + std::to_string(ct.proto) +
                           "|" + std::to_string(ct.orig.dport);
                },
                n, false);
    }

    // A jump: the source's new flows in a window, against the window before (so it needs to
    // have been tracked for two windows: a start is not a jump).
    SrcKey sk{};
    sk.src = ct.orig.src;
    sk.family = ct.family;
    sk.source = ct.source;
    if (!sources_.contains(sk)) {
        evictions += sources_order_.make_room(sources_, c.config.max_tracked, c.now_ns, last);
        sources_order_.added(sk, c.now_ns);
    }
    Entry& s = sources_[sk];
    if (!s.since_ns) s.since_ns = c.now_ns;
    s.count.add(c.now_ns, window, 1);
    s.last_ns = c.now_ns;
    const std::uint64_t total = s.count.estimate(c.now_ns, window);
    const bool jumped = total >= c.config.fanout_jump && c.now_ns >= s.since_ns + 2 * window &&
                        total >= std::uint64_t{c.config.fanout_jump_factor} *
                                     std::max<std::uint64_t>(1, s.count.prev);
    table::Alert* open_jump = c.book.touch(s.alert, c.now_ns);
    if (jumped || open_jump)
        s.alert = raise(
            open_jump,
            [&] {
                return "fan_out_jump|" + std::to_string(ct.source) + "|" +
                       addr_text(ct.orig.src, ct.family);
            },
            total, true);
}

void FanoutDetector::expire(Ctx& c) {
    const std::uint64_t keep = 2 * ns_of(c.config.fanout_window);
    std::erase_if(keys_, [&](const auto& kv) { return kv.second.last_ns + keep < c.now_ns; });
    std::erase_if(sources_, [&](const auto& kv) { return kv.second.last_ns + keep < c.now_ns; });
}

// ---- exfiltration ------------------------------------------------------------------------

std::size_t FlowBaselines::find(ct::FlowKey key) const noexcept {
    if (slots_.empty()) return 0;
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
        if (state_[i] == k_empty) return slots_.size();
        if (slots_[i].key == key) return i;
    }
}

void FlowBaselines::remove_at(std::size_t i) noexcept {
    // Backward shift: the entries after i that probed past it move up, so no tombstones.
    state_[i] = k_empty;
    --size_;
    for (std::size_t j = (i + 1) & mask_; state_[j] != k_empty; j = (j + 1) & mask_) {
        const std::size_t k = home(slots_[j].key);
        const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        slots_[i] = slots_[j];
        state_[i] = state_[j];
        state_[j] = k_empty;
        i = j;
    }
}

void FlowBaselines::evict_one(std::uint64_t& evictions) noexcept {
    // Ends: a full turn clears every second chance.
    for (;;) {
        if (state_[hand_] == k_referenced) {
            state_[hand_] = k_used;
        } else if (state_[hand_] == k_used) {
            remove_at(hand_);  // the hand stays: an entry may have shifted into its slot
            ++evictions;
            return;
        }
        hand_ = (hand_ + 1) & mask_;
    }
}

void FlowBaselines::resize(std::size_t cap, std::uint64_t& evictions) {
    std::vector<Slot> old_slots;
    std::vector<std::uint8_t> old_state;
    old_slots.swap(slots_);
    old_state.swap(state_);
    std::size_t n = 16;
    while (n < 2 * cap) n *= 2;
    slots_.assign(n, Slot{});
    state_.assign(n, k_empty);
    mask_ = n - 1;
    cap_ = cap;
    size_ = hand_ = 0;
    for (std::size_t i = 0; i < old_slots.size(); ++i)
        if (old_state[i] != k_empty) exchange(old_slots[i].key, old_slots[i].bytes, cap, evictions);
}

std::uint64_t FlowBaselines::exchange(ct::FlowKey key, std::uint64_t bytes, std::size_t cap,
                                      std::uint64_t& evictions) {
    if (cap != cap_) resize(std::max<std::size_t>(1, cap), evictions);
    if (const std::size_t i = find(key); i != slots_.size()) {
        const std::uint64_t before = slots_[i].bytes;
        slots_[i].bytes = bytes;
        state_[i] = k_referenced;
        return before;
    }
    if (size_ >= cap_) evict_one(evictions);
    std::size_t i = home(key);
    while (state_[i] != k_empty) i = (i + 1) & mask_;
    slots_[i] = {key, bytes};
    state_[i] = k_used;
    ++size_;
    return 0;
}

void FlowBaselines::erase(ct::FlowKey key) {
    if (const std::size_t i = find(key); i != slots_.size()) remove_at(i);
}

void ExfilDetector::set_allow(const DetectConfig& config) {
    allow_nets_.clear();
    allow_countries_.clear();
    allow_procs_.clear();
    for (const auto& item : config.exfil_allow) {
        if (auto p = parse_network(item))
            allow_nets_.push_back(*p);
        else if (item.size() == 2 && std::isupper(static_cast<unsigned char>(item[0])) &&
                 std::isupper(static_cast<unsigned char>(item[1])))
            allow_countries_.push_back(item);
        else
            allow_procs_.push_back(item);
    }
}

bool ExfilDetector::allowed(const Ctx& c, const table::FlowRow& row) const {
    const auto& ct = row.ct;
    for (const auto& p : allow_nets_)
        if (p.contains(ct.family, ct.orig.dst)) return true;
    if (!allow_countries_.empty() && row.dst_country != k_no_string) {
        const auto cc = c.str(row.dst_country);
        for (const auto& a : allow_countries_)
            if (cc == a) return true;
    }
    if (!allow_procs_.empty() && row.pid) {
        const auto comm = c.str(row.comm);
        for (const auto& a : allow_procs_)
            if (comm == a) return true;
    }
    return false;
}

std::uint64_t ExfilDetector::Client::sum(std::uint64_t now_ns, std::uint64_t window_ns) const {
    std::uint64_t total = 0;
    for (int i = 0; i < k_buckets; ++i)
        if (bucket_start[i] + window_ns > now_ns) total += bucket_bytes[i];
    return total;
}

void ExfilDetector::Client::add(std::uint64_t now_ns, std::uint64_t window_ns,
                                std::uint64_t bytes) {
    // Ten buckets of a tenth of the window each: the sum slides in steps of W/10.
    const std::uint64_t width = std::max<std::uint64_t>(1, window_ns / k_buckets);
    const std::uint64_t start = now_ns - now_ns % width;
    const int i = static_cast<int>((now_ns / width) % k_buckets);
    if (bucket_start[i] != start) {
        bucket_start[i] = start;
        bucket_bytes[i] = 0;
    }
    bucket_bytes[i] += bytes;
    last_ns = now_ns;
}

void ExfilDetector::on_flow(Ctx& c, const Facts& f) {
    const auto& row = f.row;
    if (!row.has_counters() || !f.outbound() || !f.leaves()) return;
    const std::uint64_t bytes = row.ct.orig_counters.bytes;
    // An absent flow's baseline is 0: a flow that has sent nothing yet (a new connection's
    // first sighting, often) needs no entry, and costs no insertion and no eviction.
    if (bytes == 0) return;
    const std::uint64_t before =
        sent_.exchange(f.key, bytes, 16 * std::size_t{c.config.max_tracked}, evictions);
    const std::uint64_t delta = bytes > before ? bytes - before : 0;
    if (delta == 0 || allowed(c, row)) return;
    const auto& ct = row.ct;
    Key key{};
    key.src = ct.orig.src;
    key.family = ct.family;
    key.source = ct.source;
    key.pid = row.pid;
    if (!clients_.contains(key)) {
        evictions += clients_order_.make_room(clients_, c.config.max_tracked, c.now_ns,
                                              [](const Client& x) { return x.last_ns; });
        clients_order_.added(key, c.now_ns);
    }
    Client& client = clients_[key];
    const std::uint64_t window = ns_of(c.config.exfil_window);
    client.add(c.now_ns, window, delta);
    const std::uint64_t sum = client.sum(c.now_ns, window);
    // An open alert is found by its id: no text is built for a flow that only adds bytes.
    table::Alert* open = c.book.touch(client.alert, c.now_ns);
    if (!open && sum < c.config.exfil_bytes) return;
    bool created = false;
    if (!open) {
        const std::string fold = "exfiltration|" + std::to_string(ct.source) + "|" +
                                 addr_text(ct.orig.src, ct.family) + "|" + std::to_string(row.pid);
        open = &c.book.raise(table::AlertKind::exfiltration, fold, c.now_ns, created);
    }
    table::Alert& a = *open;
    client.alert = a.id;
    if (created) {
        a.severity = table::Severity::medium;
        a.src = addr_text(ct.orig.src, ct.family);
        fill_context(c, a, row);
        a.first_ns = row.start_ns() ? std::min(row.start_ns(), c.now_ns) : c.now_ns;
    }
    a.bytes = std::max(a.bytes, sum);
    // Every byte out counts in the sum; only flows that carried a real share are evidence
    // (not the ACKs of a download running beside the upload).
    if (bytes < c.config.exfil_bytes / 16 && !created) return;
    const std::string& src = a.src;
    const std::string dst = addr_text(ct.orig.dst, ct.family);
    if (std::find(a.flows.begin(), a.flows.end(), f.key) == a.flows.end()) ++a.count;
    add_sample(a.dsts, dst);
    add_sample(a.ports, ct.orig.dport);
    if (a.country.empty() && row.dst_country != k_no_string)
        a.country = std::string(c.str(row.dst_country));
    a.distinct = a.dsts.size();
    c.book.evidence(a, f.key);
    const std::string who = a.process.empty() ? src : src + " (" + a.process + ")";
    a.message = who + " sent " + bytes_text(a.bytes) + " to " +
                (a.dsts.size() > 1 ? std::to_string(a.dsts.size()) + " destinations" : dst) +
                " in " + duration_text(std::max(a.last_ns, c.now_ns) - a.first_ns);
}

void ExfilDetector::expire(Ctx& c) {
    const std::uint64_t window = ns_of(c.config.exfil_window);
    std::erase_if(clients_, [&](const auto& kv) { return kv.second.last_ns + window < c.now_ns; });
}

}  // namespace flowtop::detect
