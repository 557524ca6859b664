#include "flowtop/enrich/enricher.hpp"

#include <netinet/in.h>

#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

namespace flowtop::enrich {

namespace {

constexpr std::uint64_t k_ns = 1'000'000'000ull;

std::uint64_t ns(std::chrono::seconds s) { return static_cast<std::uint64_t>(s.count()) * k_ns; }

StrId intern_or_none(StringPool& strings, std::string_view s) {
    return s.empty() ? k_no_string : strings.intern(s);
}

}  // namespace

Enricher::GeoIds Enricher::GeoIds::intern(StringPool& strings, const GeoResult& r) {
    return {intern_or_none(strings, r.country), intern_or_none(strings, r.country_name),
            intern_or_none(strings, r.city), intern_or_none(strings, r.org), r.asn};
}

std::size_t Enricher::AddrHash::operator()(const AddrKey& k) const noexcept {
    std::uint64_t a = 0, b = 0;
    std::memcpy(&a, k.addr.bytes.data(), 8);
    std::memcpy(&b, k.addr.bytes.data() + 8, 8);
    std::uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^
                      (b + 0x632BE59BD9B4E019ull + static_cast<std::uint64_t>(k.family));
    return static_cast<std::size_t>(h ^ (h >> 29));
}

Enricher::Enricher(ServiceTable services, GeoIp geo, std::unique_ptr<DnsResolver> dns,
                   EnricherConfig config)
    : services_(std::move(services)), dns_(std::move(dns)), config_(config) {
    if (!geo.empty()) {
        geo_db_ = std::make_shared<const GeoIp>(std::move(geo));
        geo_ = std::make_unique<GeoWorker>(geo_db_, config.geo_queue);
    }
}

StrId Enricher::service_for(const table::FlowRow& row, StringPool& strings) {
    const auto proto = row.ct.proto;
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) return k_no_string;
    const auto port = row.ct.orig.dport;
    const std::uint32_t key = std::uint32_t{proto} << 16 | port;
    if (auto it = service_ids_.find(key); it != service_ids_.end()) return it->second;
    const std::string* name = services_.lookup(proto, port);
    StrId id = name ? strings.intern(*name) : k_no_string;
    service_ids_.emplace(key, id);
    return id;
}

const Enricher::GeoIds* Enricher::geo_for(const Addr& addr, Family family, StringPool& strings,
                                          Wait& wait) {
    AddrKey key{addr, family};
    if (auto it = geo_cache_.find(key); it != geo_cache_.end()) {
        ++stats_.geo_cache_hits;
        return &it->second;
    }
    if (geo_cache_.size() >= config_.cache_limit) {
        geo_cache_.clear();  // rare; rows keep their ids and new addresses refill it
        geo_pending_.clear();
        for (auto& [waited, keys] : geo_waiting_)
            retry_.insert(retry_.end(), keys.begin(), keys.end());
        geo_waiting_.clear();
    }
    if (!geo_ || skip_lookup(addr, family)) {
        // Special-purpose addresses need no database: label them here, at once.
        return &geo_cache_.emplace(key, GeoIds::intern(strings, GeoIp{}.lookup(addr, family)))
                    .first->second;
    }
    if (geo_pending_.contains(key)) {
        wait = Wait::answer;
        return nullptr;
    }
    if (geo_inline_left_ > 0) {
        --geo_inline_left_;
        ++stats_.geo_lookups;
        return &geo_cache_.emplace(key, GeoIds::intern(strings, geo_db_->lookup(addr, family)))
                    .first->second;
    }
    if (!geo_full_ && !geo_->post({addr, family})) {
        // Full: stop posting for this tick; the remaining rows ask on a later one.
        ++stats_.geo_dropped;
        geo_full_ = true;
    }
    if (geo_full_) {
        wait = Wait::retry;
        return nullptr;
    }
    ++stats_.geo_lookups;
    geo_pending_.insert(key);
    wait = Wait::answer;
    return nullptr;
}

void Enricher::drain_geo(StringPool& strings) {
    GeoAnswer a;
    while (geo_->poll(a)) {
        AddrKey key{a.addr, a.family};
        geo_pending_.erase(key);
        geo_cache_.insert_or_assign(key, GeoIds::intern(strings, a.result));
        wake(geo_waiting_, key);
    }
}

StrId Enricher::name_for(const Addr& addr, Family family, std::uint64_t now_ns, Wait& wait) {
    AddrKey key{addr, family};
    auto it = names_.find(key);
    if (it != names_.end() && it->second.expires_ns > now_ns) {
        if (it->second.pending) wait = Wait::answer;
        return it->second.name;
    }
    if (names_.size() >= config_.cache_limit) {
        // One sweep a tick at most: a full cache of live entries must not cost a scan per row.
        wait = Wait::retry;  // asked again when room is back
        if (names_swept_) return it != names_.end() ? it->second.name : k_no_string;
        names_swept_ = true;
        std::erase_if(names_, [&](const auto& kv) { return kv.second.expires_ns <= now_ns; });
        if (names_.size() >= config_.cache_limit) return k_no_string;
        wait = Wait::none;
        it = names_.find(key);
    }
    // Unknown or expired: ask (again). When the queue is full the entry stays absent and the
    // next tick tries again; nothing waits.
    if (!dns_->post({addr, family})) {
        ++stats_.dns_dropped;
        wait = Wait::retry;
        return it != names_.end() ? it->second.name : k_no_string;
    }
    wait = Wait::answer;
    ++stats_.dns_posted;
    NameEntry pending{it != names_.end() ? it->second.name : k_no_string,
                      now_ns + ns(config_.dns_retry_after), true};
    names_.insert_or_assign(key, pending);
    return pending.name;
}

void Enricher::drain_dns(StringPool& strings, std::uint64_t now_ns) {
    DnsAnswer a;
    while (dns_->poll(a)) {
        ++stats_.dns_answers;
        NameEntry e;
        e.name = a.found ? strings.intern(a.name) : k_no_string;
        e.expires_ns = now_ns + ns(a.found ? config_.dns_positive_ttl : config_.dns_negative_ttl);
        const AddrKey key{a.addr, a.family};
        names_.insert_or_assign(key, e);
        wake(dns_waiting_, key);
    }
}

std::vector<std::string> Enricher::take_notes() {
    std::lock_guard lock(notes_mutex_);
    return std::exchange(notes_, {});
}

void Enricher::wait_for(std::unordered_map<AddrKey, std::vector<ct::FlowKey>, AddrHash>& waiting,
                        const AddrKey& addr, ct::FlowKey key) {
    auto& keys = waiting[addr];
    if (keys.empty() || keys.back() != key) keys.push_back(key);
}

void Enricher::wake(std::unordered_map<AddrKey, std::vector<ct::FlowKey>, AddrHash>& waiting,
                    const AddrKey& addr) {
    auto it = waiting.find(addr);
    if (it == waiting.end()) return;
    recheck_.insert(recheck_.end(), it->second.begin(), it->second.end());
    waiting.erase(it);
}

std::chrono::milliseconds Enricher::full_pass_period() const noexcept {
    // Names expire (an hour, five minutes for failures): every row's name is looked at again
    // once a minute, in slices, instead of every row every tick.
    return dns_ ? std::chrono::milliseconds(60'000) : std::chrono::milliseconds(0);
}

void Enricher::enrich_row(table::TickContext& tick, ct::FlowKey key) {
    const table::FlowRow* found = tick.find(key);
    if (!found) return;
    const table::FlowRow& row = *found;
    StringPool& strings = tick.strings();
    const auto family = row.ct.family;
    const bool geo = geo_ != nullptr;
    const bool label = config_.label_special;
    Wait wait = Wait::none;
    auto note = [&](Wait w, auto& waiting, const Addr& addr) {
        if (w == Wait::answer) wait_for(waiting, AddrKey{addr, family}, key);
        if (w == Wait::retry) wait = Wait::retry;
    };
    const StrId service = row.service == k_no_string ? service_for(row, strings) : row.service;
    const GeoIds* dst_geo = nullptr;
    if (row.dst_country == k_no_string &&
        (geo || (label && special_label(row.ct.orig.dst, family)))) {
        Wait w = Wait::none;
        dst_geo = geo_for(row.ct.orig.dst, family, strings, w);
        note(w, geo_waiting_, row.ct.orig.dst);
    }
    const GeoIds* src_geo = nullptr;
    if (row.src_country == k_no_string &&
        (geo || (label && special_label(row.ct.orig.src, family)))) {
        Wait w = Wait::none;
        src_geo = geo_for(row.ct.orig.src, family, strings, w);
        note(w, geo_waiting_, row.ct.orig.src);
    }
    StrId dst_name = row.dst_name, src_name = row.src_name;
    if (dns_ && !dns_paused_.load(std::memory_order_relaxed)) {
        Wait w = Wait::none;
        dst_name = name_for(row.ct.orig.dst, family, tick.now_ns(), w);
        note(w, dns_waiting_, row.ct.orig.dst);
        w = Wait::none;
        src_name = name_for(row.ct.orig.src, family, tick.now_ns(), w);
        note(w, dns_waiting_, row.ct.orig.src);
    }
    if (wait == Wait::retry) retry_.push_back(key);
    // Writes only the rows whose names or places changed: a settled row costs no copy and
    // leaves the frames' shared chunks alone.
    tick.enrich(key, [&](table::FlowEnrichment& r) {
        r.service = service;
        if (dst_geo) {
            r.dst_country = dst_geo->country;
            r.dst_country_name = dst_geo->country_name;
            r.dst_city = dst_geo->city;
            r.dst_org = dst_geo->org;
            r.dst_asn = dst_geo->asn;
        }
        if (src_geo) r.src_country = src_geo->country;
        r.dst_name = dst_name;
        r.src_name = src_name;
    });
}

void Enricher::check_geo_files(std::uint64_t now_ns) {
    if (!geo_db_ || now_ns - geo_checked_ns_ <
                        static_cast<std::uint64_t>(config_.geo_check_every.count()) * 1'000'000)
        return;
    geo_checked_ns_ = now_ns;
    std::vector<std::string> notes;
    // Answers cached from a file that changed are stale; rows looked up from now on get the
    // new file's.
    if (geo_db_->check_files(notes)) geo_cache_.clear();
    for (auto& n : notes) {
        if (config_.notes_at_once) {
            std::fprintf(stderr, "flowtop: warning: %s\n", n.c_str());
        } else {
            std::lock_guard lock(notes_mutex_);
            notes_.push_back(std::move(n));
        }
    }
}

void Enricher::on_tick(table::TickContext& tick) {
    check_geo_files(tick.now_ns());
    if (dns_) drain_dns(tick.strings(), tick.now_ns());
    if (geo_) drain_geo(tick.strings());
    geo_full_ = false;
    names_swept_ = false;
    geo_inline_left_ = config_.geo_inline_per_tick;
    // Answers first (their rows wait longest), then the rows a full queue held back, then the
    // new flows, then the rolling pass. A key may come twice: the second visit finds it settled.
    visiting_.clear();
    visiting_.swap(recheck_);
    visiting_.insert(visiting_.end(), retry_.begin(), retry_.end());
    retry_.clear();
    const auto& changes = tick.changes();
    visiting_.insert(visiting_.end(), changes.created.begin(), changes.created.end());
    visiting_.insert(visiting_.end(), tick.pass_keys().begin(), tick.pass_keys().end());
    for (const auto key : visiting_) enrich_row(tick, key);
}

}  // namespace flowtop::enrich
