// What is new: a country this host never talked to, a port that starts accepting inbound
// flows. Both learn for a while first; both may need enrichment that arrives a tick late
// (GeoIP from its worker, the socket owner from sock_diag), so a flow can wait a few ticks.
#include "common.hpp"

namespace flowtop::detect {
namespace {
constexpr int k_wait_ticks = 3;

// The remote end's country: the destination of an outbound or forwarded flow, the source of
// an inbound one.
StrId remote_country(const Facts& f) {
    if (f.dst_local && !f.src_local) return f.row.src_country;
    return f.row.dst_country;
}
}  // namespace

bool NoveltyDetector::country(Ctx& c, const Facts& f, bool last_try) {
    if (!c.config.country || (f.src_local && f.dst_local)) return true;
    const StrId cc = remote_country(f);
    if (cc == k_no_string) return !c.env.geoip || last_try;  // pending, or no database
    const auto code = c.str(cc);
    if (code.empty() || code == "--") return true;  // private, loopback, documentation...
    const auto& allow = c.config.allow_country;
    const bool listed = !allow.empty();
    bool allowed = false;
    for (const auto& a : allow) allowed |= a == code;
    if (listed && allowed) return true;
    const bool learning_now = c.now_ns < c.start_ns + ns_of(c.config.country_learn);
    // A local process's flow waits for its owner, so that one alert names it, instead of a
    // host-wide alert now and a per-process one a tick later.
    if (c.env.attribution && f.src_local && !f.row.pid && !learning_now && !last_try) return false;

    const bool known = countries_.contains(cc);
    if (!known) {
        if (countries_.size() >= 4096)
            ++evictions;  // 250 countries exist: never reached
        else
            countries_.emplace(cc, c.now_ns);
    }
    const StrId comm = f.row.pid ? f.row.comm : k_no_string;
    const std::uint64_t pair = std::uint64_t{comm} << 32 | cc;
    bool process_new = false;
    if (comm != k_no_string && !by_process_.contains(pair)) {
        if (by_process_.size() >= 16 * std::size_t{c.config.max_tracked}) {
            by_process_.clear();  // rare: forget, and relearn as if new
            ++evictions;
        }
        by_process_.emplace(pair, c.now_ns);
        process_new = true;
    }
    const bool outside = listed && !allowed;
    if (learning_now && !outside) return true;
    const std::string remote = addr_text(
        f.dst_local && !f.src_local ? f.row.ct.orig.src : f.row.ct.orig.dst, f.row.ct.family);
    const std::string proc = process_text(c, f.row);
    std::string fold;
    table::Severity severity = table::Severity::medium;
    std::string sentence;
    if (outside) {
        fold = "new_country|" + std::string(code);
        sentence =
            "contact with " + std::string(code) + ", outside the allowed countries: " + remote;
    } else if (!known) {
        fold = "new_country|" + std::string(code);
        sentence = "first contact with " + std::string(code) + ": " + remote;
    } else if (table::Alert* open = c.book.open("new_country|" + std::string(code), c.now_ns)) {
        // The country's own alert is still open: this flow is more of the same first contact,
        // and it may be the one that names the process.
        if (!open->pid && f.row.pid) fill_context(c, *open, f.row);
        ++open->count;
        open->last_ns = c.now_ns;
        add_sample(open->dsts, remote);
        add_sample(open->ports, f.row.ct.orig.dport);
        open->distinct = open->dsts.size();
        c.book.evidence(*open, f.key);
        return true;
    } else if (process_new) {
        fold = "new_country|" + std::string(code) + "|" + std::string(c.str(comm));
        severity = table::Severity::low;
        sentence = std::string(c.str(comm)) + " contacted " + std::string(code) +
                   " for the first time: " + remote;
    } else {
        return true;
    }
    bool created = false;
    table::Alert& a = c.book.raise(table::AlertKind::new_country, fold, c.now_ns, created);
    if (created) {
        a.severity = severity;
        a.country = std::string(code);
        a.src = addr_text(f.row.ct.orig.src, f.row.ct.family);
        fill_context(c, a, f.row);
        a.message =
            sentence +
            (proc.empty() || sentence.rfind(std::string(c.str(comm)), 0) == 0 ? "" : " by " + proc);
    }
    ++a.count;
    add_sample(a.dsts, remote);
    add_sample(a.ports, f.row.ct.orig.dport);
    a.distinct = a.dsts.size();
    c.book.evidence(a, f.key);
    return true;
}

bool NoveltyDetector::service(Ctx& c, const Facts& f, bool last_try) {
    const auto& ct = f.row.ct;
    if (!c.config.service || !f.dst_local || f.src_local || !f.answered) return true;
    if (ct.proto != IPPROTO_TCP && ct.proto != IPPROTO_UDP && ct.proto != IPPROTO_SCTP) return true;
    const std::uint32_t key = std::uint32_t{ct.proto} << 16 | ct.orig.dport;
    const bool learning = c.now_ns < c.start_ns + ns_of(c.config.service_learn);
    auto it = services_.find(key);
    if (it != services_.end()) {
        it->second.last_ns = c.now_ns;
        if (!it->second.alert) return true;
        table::Alert* open = c.book.open(
            "new_service|" + std::to_string(ct.source) + "|" + std::to_string(key), c.now_ns);
        if (!open) {
            it->second.alert = 0;  // quiet for a fold window: from now on a known service
            return true;
        }
        ++open->count;
        add_sample(open->dsts, addr_text(ct.orig.src, ct.family));
        open->distinct = open->dsts.size();
        c.book.evidence(*open, f.key);
        return true;
    }
    for (const auto& allowed : c.config.service_allow) {
        const auto slash = allowed.find('/');
        const std::string port = allowed.substr(0, slash);
        const std::string proto = slash == std::string::npos ? "" : allowed.substr(slash + 1);
        if (port == std::to_string(ct.orig.dport) &&
            (proto.empty() || proto == ct::proto_name(ct.proto)))
            return true;
    }
    if (learning) {
        if (services_.size() < 16 * std::size_t{c.config.max_tracked})
            services_.emplace(key, Service{0, c.now_ns});
        else
            ++evictions;
        return true;
    }
    if (c.env.attribution && !f.row.pid && !last_try) return false;  // owner may come next tick
    if (services_.size() >= 16 * std::size_t{c.config.max_tracked})
        evictions += evict_oldest(services_, 16 * std::size_t{c.config.max_tracked},
                                  [](const Service& s) { return s.last_ns; });
    bool created = false;
    table::Alert& a = c.book.raise(
        table::AlertKind::new_service,
        "new_service|" + std::to_string(ct.source) + "|" + std::to_string(key), c.now_ns, created);
    services_[key] = Service{a.id, c.now_ns};
    a.severity = table::Severity::medium;
    const std::string local = addr_text(ct.orig.dst, ct.family);
    a.src = addr_text(ct.orig.src, ct.family);
    add_sample(a.dsts, a.src);
    a.ports = {ct.orig.dport};
    fill_context(c, a, f.row);
    ++a.count;
    a.distinct = a.dsts.size();
    if (f.row.src_country != k_no_string) a.country = std::string(c.str(f.row.src_country));
    c.book.evidence(a, f.key);
    const std::string proc = process_text(c, f.row);
    a.message = "new service: " + std::string(ct::proto_name(ct.proto)) + " port " +
                std::to_string(ct.orig.dport) + " of " + local + " accepted a flow from " + a.src +
                (proc.empty() ? " (owner unknown)" : ", owned by " + proc);
    return true;
}

void NoveltyDetector::on_flow(Ctx& c, const Facts& f) {
    const bool cc = country(c, f, false);
    const bool svc = service(c, f, false);
    if (cc && svc) return;
    for (auto& w : waiting_)
        if (w.key == f.key) return;  // already waiting
    if (waiting_.size() >= 16 * std::size_t{c.config.max_tracked}) {
        ++evictions;
        return;
    }
    waiting_.push_back({f.key, k_wait_ticks, !cc, !svc});
}

void NoveltyDetector::retry(Ctx& c, const std::function<const table::FlowRow*(ct::FlowKey)>& find,
                            const std::function<Facts(const table::FlowRow&, ct::FlowKey)>& facts) {
    std::erase_if(waiting_, [&](Wait& w) {
        const table::FlowRow* row = find(w.key);
        if (!row) return true;
        const Facts f = facts(*row, w.key);
        const bool last = --w.ticks <= 0;
        if (w.country) w.country = !country(c, f, last);
        if (w.service) w.service = !service(c, f, last);
        return !(w.country || w.service) || last;
    });
}

// ---- age and ports -----------------------------------------------------------------------

namespace {
struct WellKnown {
    const char* comm;
    bool server;  // listens (inbound flows) or connects (outbound)
    std::uint16_t ports[4];
};
// Programs whose port is part of the protocol; anything else is worth a look (a tunnel, a
// backdoor sshd, a resolver that talks to an odd upstream). Only programs with one clear port.
constexpr WellKnown k_well_known[] = {
    {"sshd", true, {22}},
    {"ssh", false, {22}},
    {"scp", false, {22}},
    {"sftp", false, {22}},
    {"named", true, {53}},
    {"unbound", true, {53, 853}},
    {"chronyd", false, {123}},
    {"ntpd", false, {123}},
    {"smtpd", true, {25, 465, 587}},
    {"exim4", true, {25, 465, 587}},
    {"slapd", true, {389, 636}},
    {"mysqld", true, {3306}},
    {"postgres", true, {5432}},
    {"redis-server", true, {6379}},
};
}  // namespace

void AgeDetector::on_flow(Ctx& c, const Facts& f) {
    const auto& row = f.row;
    const auto& ct = row.ct;
    if (c.config.long_lived && !row.closed &&
        row.age_s(c.now_ns) >= static_cast<double>(c.config.long_after.count()) &&
        !long_seen_.contains(f.key)) {
        if (long_seen_.size() >= 16 * std::size_t{c.config.max_tracked})
            evictions += evict_oldest(long_seen_, 16 * std::size_t{c.config.max_tracked},
                                      [](std::uint64_t ns) { return ns; });
        long_seen_.emplace(f.key, c.now_ns);
        const std::string src = addr_text(ct.orig.src, ct.family);
        const std::string dst = addr_text(ct.orig.dst, ct.family);
        bool created = false;
        table::Alert& a =
            c.book.raise(table::AlertKind::long_lived,
                         "long_lived|" + std::to_string(ct.source) + "|" + src + "|" + dst + "|" +
                             std::to_string(ct.proto) + "|" + std::to_string(ct.orig.dport),
                         c.now_ns, created);
        if (created) {
            a.severity = table::Severity::low;
            a.src = src;
            a.dsts = {dst};
            a.ports = {ct.orig.dport};
            a.first_ns = std::min(row.start_ns(), c.now_ns);
        }
        fill_context(c, a, row);
        if (row.dst_country != k_no_string) a.country = std::string(c.str(row.dst_country));
        ++a.count;
        a.distinct = a.count;
        a.bytes = row.has_counters() ? ct.orig_counters.bytes + ct.reply_counters.bytes : 0;
        c.book.evidence(a, f.key);
        const std::string proc = process_text(c, row);
        a.message = std::string(ct::proto_name(ct.proto)) + " flow " + src + " -> " + dst + ":" +
                    std::to_string(ct.orig.dport) + " open for " +
                    duration_text(static_cast<std::uint64_t>(row.age_s(c.now_ns) * 1e9)) +
                    (proc.empty() ? "" : " (" + proc + ")");
    }
    if (!c.config.odd_port || !row.pid || odd_seen_.contains(f.key)) return;
    if (ct.proto != IPPROTO_TCP && ct.proto != IPPROTO_UDP) return;
    const auto comm = c.str(row.comm);
    for (const auto& w : k_well_known) {
        if (comm != w.comm) continue;
        if (w.server ? !(f.dst_local && !f.src_local) : !f.src_local) break;
        const std::uint16_t port = ct.orig.dport;
        bool expected = false;
        for (auto p : w.ports) expected |= p != 0 && p == port;
        if (odd_seen_.size() >= 16 * std::size_t{c.config.max_tracked})
            evictions += evict_oldest(odd_seen_, 16 * std::size_t{c.config.max_tracked},
                                      [](std::uint64_t ns) { return ns; });
        odd_seen_.emplace(f.key, c.now_ns);
        if (expected) break;
        bool created = false;
        table::Alert& a = c.book.raise(table::AlertKind::odd_port,
                                       "odd_port|" + std::string(comm) + "|" + std::to_string(port),
                                       c.now_ns, created);
        if (created) {
            a.severity = table::Severity::low;
            a.src = addr_text(ct.orig.src, ct.family);
            a.ports = {port};
        }
        fill_context(c, a, row);
        add_sample(a.dsts, addr_text(ct.orig.dst, ct.family));
        ++a.count;
        a.distinct = a.dsts.size();
        c.book.evidence(a, f.key);
        a.message = std::string(comm) + (w.server ? " accepted " : " connected to ") +
                    std::string(ct::proto_name(ct.proto)) + " port " + std::to_string(port) +
                    ", not its usual " + std::to_string(w.ports[0]) + " (" +
                    addr_text(ct.orig.src, ct.family) + " -> " + addr_text(ct.orig.dst, ct.family) +
                    ")";
        break;
    }
}

}  // namespace flowtop::detect
