// Port scans, host sweeps and floods: flows that never completed (TCP without ASSURED: a SYN
// answered by RST, a SYN/ACK never acknowledged, no answer at all; UDP without a reply) are
// probes. A probe that later completes is taken back: normal traffic leaves no evidence.
#include <cstdio>

#include "common.hpp"

namespace flowtop::detect {

// ---- scans -------------------------------------------------------------------------------

void ScanDetector::on_flow(Ctx& c, const Facts& f, bool created) {
    const auto& ct = f.row.ct;
    if (ct.proto != IPPROTO_TCP && ct.proto != IPPROTO_UDP) return;
    SrcKey key{};
    key.src = ct.orig.src;
    key.family = ct.family;
    key.source = ct.source;
    if (f.answered) {
        // Completed after all: not a probe (if it was counted as one, take it back).
        auto it = sources_.find(key);
        if (it == sources_.end()) return;
        auto& probes = it->second.probes;
        probes_ -= std::erase_if(probes, [&](const Probe& p) {
            return p.key == f.key && !p.counted_scan && !p.counted_sweep;
        });
        return;
    }
    if (!created) return;
    // Bounded twice: sources, and probes over all sources (a burst of new scanners).
    auto last = [](const Source& s) { return s.last_ns; };
    if (probes_ >= k_max_probes && !sources_.empty()) {
        evictions += evict_oldest(sources_, sources_.size(), last);  // rare: an eighth at once
        probes_ = 0;
        for (const auto& [k, src] : sources_) probes_ += src.probes.size();
    }
    if (!sources_.contains(key)) {
        evictions += sources_order_.make_room(sources_, c.config.max_tracked, c.now_ns, last,
                                              [&](const Source& s) { probes_ -= s.probes.size(); });
        sources_order_.added(key, c.now_ns);
    }
    Source& s = sources_[key];
    const std::size_t cap = 4 * std::size_t{std::max(c.config.scan_ports, c.config.scan_hosts)};
    if (s.probes.size() >= cap) {
        // Keep the newest: the window slides, and an open alert counts what it already saw.
        s.probes.erase(s.probes.begin(), s.probes.begin() + static_cast<long>(cap / 4));
        probes_ -= cap / 4;
        ++evictions;
    }
    ++probes_;
    s.probes.push_back({c.now_ns, f.key, ct.orig.dst, ct.orig.dport, ct.proto});
    s.last_ns = c.now_ns;
    if (!s.touched) {
        s.touched = true;
        touched_.push_back(key);
    }
}

void ScanDetector::evaluate(Ctx& c) {
    for (const auto& key : touched_) {
        auto it = sources_.find(key);
        if (it == sources_.end()) continue;
        it->second.touched = false;
        evaluate_source(c, key, it->second);
    }
    touched_.clear();
}

void ScanDetector::evaluate_source(Ctx& c, const SrcKey& key, Source& s) {
    const std::uint64_t window = ns_of(c.config.scan_window);
    probes_ -= std::erase_if(s.probes, [&](const Probe& p) { return p.ns + window < c.now_ns; });
    if (s.probes.empty()) return;
    const std::string src = addr_text(key.src, key.family);
    // Distinct (host, port) pairs, then ports per host and hosts per port.
    std::vector<std::pair<Addr, std::uint32_t>> pairs;
    pairs.reserve(s.probes.size());
    for (const auto& p : s.probes) pairs.emplace_back(p.dst, std::uint32_t{p.proto} << 16 | p.port);
    std::sort(pairs.begin(), pairs.end());
    pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());

    auto count_into = [&](table::Alert& a, Track& t, bool sweep) {
        for (auto& p : s.probes) {
            bool& counted = sweep ? p.counted_sweep : p.counted_scan;
            if (counted) continue;
            const bool match =
                sweep ? (a.proto == p.proto && !a.ports.empty() && a.ports.front() == p.port)
                      : (!a.dsts.empty() && a.dsts.front() == addr_text(p.dst, key.family));
            if (!match) continue;
            counted = true;
            ++a.count;
            a.last_ns = std::max(a.last_ns, p.ns);
            if (sweep) {
                if (t.hosts.size() < 65536) t.hosts.insert(p.dst);
                add_sample(a.dsts, addr_text(p.dst, key.family));
                a.distinct = t.hosts.size();
            } else {
                if (t.ports.empty()) t.ports.assign(65536, false);
                if (!t.ports[p.port]) {
                    t.ports[p.port] = true;
                    ++a.distinct;
                }
                add_sample(a.ports, p.port);
            }
            c.book.evidence(a, p.key);
        }
    };

    // Port scan: one host, many ports (TCP and UDP ports together).
    for (std::size_t i = 0; i < pairs.size();) {
        std::size_t j = i;
        while (j < pairs.size() && pairs[j].first == pairs[i].first) ++j;
        const std::size_t ports = j - i;
        const std::string dst = addr_text(pairs[i].first, key.family);
        const std::string fold = "port_scan|" + std::to_string(key.source) + "|" + src + "|" + dst;
        table::Alert* a = c.book.open(fold, c.now_ns);
        if (a || ports >= c.config.scan_ports) {
            bool created = false;
            table::Alert& alert =
                c.book.raise(table::AlertKind::port_scan, fold, c.now_ns, created);
            if (created) {
                alert.severity = table::Severity::medium;
                alert.src = src;
                alert.dsts = {dst};
                alert.family = key.family;
                alert.proto = s.probes.front().proto;
                for (const auto& p : s.probes) alert.first_ns = std::min(alert.first_ns, p.ns);
            }
            count_into(alert, tracks_[alert.id], false);
            alert.message = src + " probed " + std::to_string(alert.distinct) + " ports of " + dst +
                            " in " + duration_text(alert.last_ns - alert.first_ns);
        }
        i = j;
    }
    // Host sweep: one port, many hosts.
    std::sort(pairs.begin(), pairs.end(), [](const auto& x, const auto& y) {
        return std::tie(x.second, x.first) < std::tie(y.second, y.first);
    });
    for (std::size_t i = 0; i < pairs.size();) {
        std::size_t j = i;
        while (j < pairs.size() && pairs[j].second == pairs[i].second) ++j;
        const std::size_t hosts = j - i;
        const auto proto = static_cast<std::uint8_t>(pairs[i].second >> 16);
        const auto port = static_cast<std::uint16_t>(pairs[i].second);
        const std::string fold = "host_sweep|" + std::to_string(key.source) + "|" + src + "|" +
                                 std::to_string(pairs[i].second);
        table::Alert* a = c.book.open(fold, c.now_ns);
        if (a || hosts >= c.config.scan_hosts) {
            bool created = false;
            table::Alert& alert =
                c.book.raise(table::AlertKind::host_sweep, fold, c.now_ns, created);
            if (created) {
                alert.severity = table::Severity::medium;
                alert.src = src;
                alert.ports = {port};
                alert.proto = proto;
                alert.family = key.family;
                for (const auto& p : s.probes) alert.first_ns = std::min(alert.first_ns, p.ns);
            }
            count_into(alert, tracks_[alert.id], true);
            alert.message = src + " probed " + std::string(ct::proto_name(proto)) + " port " +
                            std::to_string(port) + " of " + std::to_string(alert.distinct) +
                            " hosts in " + duration_text(alert.last_ns - alert.first_ns);
        }
        i = j;
    }
}

void ScanDetector::expire(Ctx& c) {
    const std::uint64_t window = ns_of(c.config.scan_window);
    std::erase_if(sources_, [&](const auto& kv) { return kv.second.last_ns + window < c.now_ns; });
    probes_ = 0;
    for (const auto& [k, src] : sources_) probes_ += src.probes.size();
    std::erase_if(tracks_, [&](const auto& kv) { return !c.book.is_open(kv.first, c.now_ns); });
}

std::size_t ScanDetector::tracked() const {
    std::size_t n = sources_.size() + tracks_.size();
    for (const auto& [k, s] : sources_) n += s.probes.size();
    return n;
}

// ---- floods ------------------------------------------------------------------------------

void FloodDetector::on_flow(Ctx& c, const Facts& f, bool created) {
    const auto& ct = f.row.ct;
    if (ct.proto != IPPROTO_TCP && ct.proto != IPPROTO_UDP) return;
    if (!f.dst_local || f.src_local) return;
    PortKey key{};
    key.proto = ct.proto;
    key.port = ct.orig.dport;
    key.source = ct.source;
    if (f.answered) {
        auto it = ports_.find(key);
        if (it == ports_.end()) return;
        std::erase_if(it->second.srcs, [&](const Src& s) { return s.key == f.key && !s.counted; });
        return;
    }
    if (!created) return;
    if (!ports_.contains(key)) {
        evictions += ports_order_.make_room(ports_, c.config.max_tracked, c.now_ns,
                                            [](const Port& p) { return p.last_ns; });
        ports_order_.added(key, c.now_ns);
    }
    Port& p = ports_[key];
    p.dst = ct.orig.dst;
    p.family = ct.family;
    p.last_ns = c.now_ns;
    // Up to 2 x flood.sources entries a flow: two word compares each, not a memcmp call.
    std::uint64_t want[2];
    std::memcpy(want, ct.orig.src.bytes.data(), sizeof want);
    auto same = std::find_if(p.srcs.begin(), p.srcs.end(), [&](const Src& s) {
        std::uint64_t have[2];
        std::memcpy(have, s.addr.bytes.data(), sizeof have);
        return ((have[0] ^ want[0]) | (have[1] ^ want[1])) == 0;
    });
    if (same != p.srcs.end()) {
        same->ns = c.now_ns;
        same->key = f.key;
        same->counted = false;
    } else {
        const std::size_t cap = 2 * std::size_t{c.config.flood_sources};
        if (p.srcs.size() >= cap) {
            p.srcs.erase(p.srcs.begin(), p.srcs.begin() + static_cast<long>(cap / 4));
            ++evictions;
        }
        p.srcs.push_back({ct.orig.src, ct.family, c.now_ns, f.key, false});
    }
    if (!p.touched) {
        p.touched = true;
        touched_.push_back(key);
    }
}

void FloodDetector::evaluate(Ctx& c) {
    const std::uint64_t window = ns_of(c.config.flood_window);
    for (const auto& key : touched_) {
        auto it = ports_.find(key);
        if (it == ports_.end()) continue;
        Port& p = it->second;
        p.touched = false;
        std::erase_if(p.srcs, [&](const Src& s) { return s.ns + window < c.now_ns; });
        const std::string fold = "syn_flood|" + std::to_string(key.source) + "|" +
                                 std::to_string(key.proto) + "|" + std::to_string(key.port);
        table::Alert* open = c.book.open(fold, c.now_ns);
        if (!open && p.srcs.size() < c.config.flood_sources) continue;
        bool created = false;
        table::Alert& a = c.book.raise(table::AlertKind::syn_flood, fold, c.now_ns, created);
        auto& seen = distinct_[a.id];
        if (created) {
            a.severity = table::Severity::high;
            a.proto = key.proto;
            a.family = p.family;
            a.ports = {key.port};
            a.dsts = {addr_text(p.dst, p.family)};
            for (const auto& s : p.srcs) a.first_ns = std::min(a.first_ns, s.ns);
        }
        for (auto& s : p.srcs) {
            if (s.counted) continue;
            s.counted = true;
            ++a.count;
            if (seen.size() < 65536) seen.insert(s.addr);
            if (a.src.empty()) a.src = addr_text(s.addr, s.family);  // the first source
            c.book.evidence(a, s.key);
        }
        a.distinct = seen.size();
        a.message = std::to_string(a.distinct) + " sources sent " + std::to_string(a.count) +
                    (key.proto == IPPROTO_TCP ? " half-open" : " unanswered") + " flows to " +
                    ct::proto_name(key.proto) + " port " + std::to_string(key.port) + " of " +
                    a.dsts.front() + " in " + duration_text(a.last_ns - a.first_ns);
    }
    touched_.clear();
}

void FloodDetector::expire(Ctx& c) {
    const std::uint64_t window = ns_of(c.config.flood_window);
    std::erase_if(ports_, [&](const auto& kv) { return kv.second.last_ns + window < c.now_ns; });
    std::erase_if(distinct_, [&](const auto& kv) { return !c.book.is_open(kv.first, c.now_ns); });
}

std::size_t FloodDetector::tracked() const {
    std::size_t n = ports_.size() + distinct_.size();
    for (const auto& [k, p] : ports_) n += p.srcs.size();
    return n;
}

}  // namespace flowtop::detect
