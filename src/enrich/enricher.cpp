#include "flowtop/enrich/enricher.hpp"

#include <netinet/in.h>

#include <cstring>
#include <string_view>

namespace flowtop::enrich {

namespace {

constexpr std::uint64_t k_ns = 1'000'000'000ull;

std::uint64_t ns(std::chrono::seconds s) { return static_cast<std::uint64_t>(s.count()) * k_ns; }

StrId intern_or_none(StringPool& strings, std::string_view s) {
    return s.empty() ? k_no_string : strings.intern(s);
}

}  // namespace

Enricher::GeoIds Enricher::GeoIds::intern(StringPool& strings, const GeoResult& r) {
    return {intern_or_none(strings, r.country), intern_or_none(strings, r.city),
            intern_or_none(strings, r.org), r.asn};
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

const Enricher::GeoIds* Enricher::geo_for(const Addr& addr, Family family, StringPool& strings) {
    AddrKey key{addr, family};
    if (auto it = geo_cache_.find(key); it != geo_cache_.end()) {
        ++stats_.geo_cache_hits;
        return &it->second;
    }
    if (geo_cache_.size() >= config_.cache_limit) {
        geo_cache_.clear();  // rare; rows keep their ids and new addresses refill it
        geo_pending_.clear();
    }
    if (!geo_ || skip_lookup(addr, family)) {
        // Special-purpose addresses need no database: label them here, at once.
        return &geo_cache_.emplace(key, GeoIds::intern(strings, GeoIp{}.lookup(addr, family)))
                    .first->second;
    }
    if (geo_pending_.contains(key)) return nullptr;
    if (geo_inline_left_ > 0) {
        --geo_inline_left_;
        ++stats_.geo_lookups;
        return &geo_cache_.emplace(key, GeoIds::intern(strings, geo_db_->lookup(addr, family)))
                    .first->second;
    }
    if (geo_full_) return nullptr;
    if (!geo_->post({addr, family})) {
        // Full: stop posting for this tick; the remaining rows ask on a later one.
        ++stats_.geo_dropped;
        geo_full_ = true;
        return nullptr;
    }
    ++stats_.geo_lookups;
    geo_pending_.insert(key);
    return nullptr;
}

void Enricher::drain_geo(StringPool& strings) {
    GeoAnswer a;
    while (geo_->poll(a)) {
        AddrKey key{a.addr, a.family};
        geo_pending_.erase(key);
        geo_cache_.insert_or_assign(key, GeoIds::intern(strings, a.result));
    }
}

StrId Enricher::name_for(const Addr& addr, Family family, std::uint64_t now_ns) {
    AddrKey key{addr, family};
    auto it = names_.find(key);
    if (it != names_.end() && it->second.expires_ns > now_ns) return it->second.name;
    if (names_.size() >= config_.cache_limit) {
        // One sweep a tick at most: a full cache of live entries must not cost a scan per row.
        if (names_swept_) return it != names_.end() ? it->second.name : k_no_string;
        names_swept_ = true;
        std::erase_if(names_, [&](const auto& kv) { return kv.second.expires_ns <= now_ns; });
        if (names_.size() >= config_.cache_limit) return k_no_string;  // ask when room is back
        it = names_.find(key);
    }
    // Unknown or expired: ask (again). When the queue is full the entry stays absent and the
    // next tick tries again; nothing waits.
    if (!dns_->post({addr, family})) {
        ++stats_.dns_dropped;
        return it != names_.end() ? it->second.name : k_no_string;
    }
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
        names_.insert_or_assign(AddrKey{a.addr, a.family}, e);
    }
}

void Enricher::on_tick(table::FlowTable& table, StringPool& strings, std::uint64_t now_ns) {
    if (dns_) drain_dns(strings, now_ns);
    if (geo_) drain_geo(strings);
    geo_full_ = false;
    names_swept_ = false;
    geo_inline_left_ = config_.geo_inline_per_tick;
    const bool geo = geo_ != nullptr;
    const bool label = config_.label_special;
    // Reads every row, writes only the rows whose names or places changed: a settled row costs
    // no copy and leaves the frames' shared chunks alone.
    table.for_each([&](const table::FlowRow& row) {
        const auto family = row.ct.family;
        const StrId service = row.service == k_no_string ? service_for(row, strings) : row.service;
        const GeoIds* dst_geo = nullptr;
        if (row.dst_country == k_no_string &&
            (geo || (label && special_label(row.ct.orig.dst, family))))
            dst_geo = geo_for(row.ct.orig.dst, family, strings);
        const GeoIds* src_geo = nullptr;
        if (row.src_country == k_no_string &&
            (geo || (label && special_label(row.ct.orig.src, family))))
            src_geo = geo_for(row.ct.orig.src, family, strings);
        // Every tick re-reads the name cache, so an expired name is refreshed in place.
        const StrId dst_name = dns_ ? name_for(row.ct.orig.dst, family, now_ns) : row.dst_name;
        const StrId src_name = dns_ ? name_for(row.ct.orig.src, family, now_ns) : row.src_name;
        const bool changed = service != row.service || dst_name != row.dst_name ||
                             src_name != row.src_name ||
                             (dst_geo && (dst_geo->country != row.dst_country ||
                                          dst_geo->city != row.dst_city ||
                                          dst_geo->org != row.dst_org || dst_geo->asn != row.dst_asn)) ||
                             (src_geo && src_geo->country != row.src_country);
        if (!changed) return;
        table.update(ct::flow_key(row.ct), [&](table::FlowRow& r) {
            r.service = service;
            if (dst_geo) {
                r.dst_country = dst_geo->country;
                r.dst_city = dst_geo->city;
                r.dst_org = dst_geo->org;
                r.dst_asn = dst_geo->asn;
            }
            if (src_geo) r.src_country = src_geo->country;
            r.dst_name = dst_name;
            r.src_name = src_name;
        });
    });
}

}  // namespace flowtop::enrich
