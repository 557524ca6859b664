#include "flowtop/enrich/geoip.hpp"

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "flowtop/util/error.hpp"

namespace flowtop::enrich {

namespace {

bool in_prefix(const Addr& a, const std::uint8_t* net, int bits) noexcept {
    for (int i = 0; bits > 0; ++i, bits -= 8) {
        std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
        if ((a.bytes[i] & mask) != (net[i] & mask)) return false;
    }
    return true;
}

struct Range {
    std::uint8_t net[16];
    int bits;
    const char* label;
};

// RFC 6890 special-purpose ranges that a user meets in a conntrack table.
constexpr Range k_v4[] = {
    {{10}, 8, "private network"},
    {{172, 16}, 12, "private network"},
    {{192, 168}, 16, "private network"},
    {{100, 64}, 10, "shared address space"},
    {{127}, 8, "loopback"},
    {{169, 254}, 16, "link-local"},
    {{192, 0, 2}, 24, "documentation"},
    {{198, 51, 100}, 24, "documentation"},
    {{203, 0, 113}, 24, "documentation"},
    {{224}, 4, "multicast"},
    {{255, 255, 255, 255}, 32, "broadcast"},
    {{0}, 8, "unspecified"},
};
constexpr Range k_v6[] = {
    {{0xfc}, 7, "private network"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0xff}, 8, "multicast"},
};

std::string string_of(const MMDB_entry_data_s& d) {
    return d.has_data && d.type == MMDB_DATA_TYPE_UTF8_STRING
               ? std::string(d.utf8_string, d.data_size)
               : std::string();
}

std::string get_string(MMDB_entry_s& entry, std::initializer_list<const char*> path) {
    std::vector<const char*> p(path);
    p.push_back(nullptr);
    MMDB_entry_data_s data{};
    if (MMDB_aget_value(&entry, &data, p.data()) != MMDB_SUCCESS) return {};
    return string_of(data);
}

}  // namespace

const char* special_label(const Addr& addr, Family family) noexcept {
    if (family == Family::ipv4) {
        for (const auto& r : k_v4)
            if (in_prefix(addr, r.net, r.bits)) return r.label;
        return nullptr;
    }
    static constexpr std::uint8_t zero[16] = {};
    static constexpr std::uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (std::memcmp(addr.bytes.data(), one, 16) == 0) return "loopback";
    if (std::memcmp(addr.bytes.data(), zero, 16) == 0) return "unspecified";
    for (const auto& r : k_v6)
        if (in_prefix(addr, r.net, r.bits)) return r.label;
    return nullptr;
}

bool skip_lookup(const Addr& addr, Family family) noexcept {
    const char* label = special_label(addr, family);
    return label != nullptr && std::strcmp(label, "documentation") != 0;
}

GeoDb::GeoDb(const std::string& path) : path_(path), mmdb_(std::make_unique<MMDB_s>()) {
    int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, mmdb_.get());
    if (status != MMDB_SUCCESS) {
        int err = errno;
        mmdb_.reset();  // MMDB_open frees what it allocated on failure
        if (status == MMDB_IO_ERROR) throw Error(errno_message("GeoIP database " + path, err));
        throw Error("GeoIP database " + path + " is not a valid mmdb file (" +
                    MMDB_strerror(status) + ")");
    }
    if (mmdb_->metadata.database_type) type_ = mmdb_->metadata.database_type;
    // libmaxminddb checks the metadata and tree size on open but the data section only on use:
    // walk it once so a truncated file is reported now, naming the file, not at the first lookup.
    MMDB_entry_data_list_s* list = nullptr;
    int verify = MMDB_get_metadata_as_entry_data_list(mmdb_.get(), &list);
    MMDB_free_entry_data_list(list);
    if (verify != MMDB_SUCCESS) {
        MMDB_close(mmdb_.get());
        mmdb_.reset();
        throw Error("GeoIP database " + path + " is corrupt (" + MMDB_strerror(verify) + ")");
    }
}

GeoDb::~GeoDb() {
    if (mmdb_) MMDB_close(mmdb_.get());
}
GeoDb::GeoDb(GeoDb&&) noexcept = default;
GeoDb& GeoDb::operator=(GeoDb&& o) noexcept {
    if (this != &o) {
        if (mmdb_) MMDB_close(mmdb_.get());
        path_ = std::move(o.path_);
        type_ = std::move(o.type_);
        mmdb_ = std::move(o.mmdb_);
    }
    return *this;
}

bool GeoDb::lookup(const Addr& addr, Family family, GeoResult& out) const noexcept {
    try {
        sockaddr_storage ss{};
        if (family == Family::ipv4) {
            auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
            sin->sin_family = AF_INET;
            std::memcpy(&sin->sin_addr, addr.bytes.data(), 4);
        } else {
            auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
            sin6->sin6_family = AF_INET6;
            std::memcpy(&sin6->sin6_addr, addr.bytes.data(), 16);
        }
        int mmdb_error = MMDB_SUCCESS;
        auto res = MMDB_lookup_sockaddr(mmdb_.get(), reinterpret_cast<sockaddr*>(&ss), &mmdb_error);
        // An IPv6 address in an IPv4-only file (DB-IP ships one file per family) has no answer.
        if (mmdb_error == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) return true;
        if (mmdb_error != MMDB_SUCCESS) return false;
        if (!res.found_entry) return true;
        auto& e = res.entry;
        if (out.country.empty()) {
            out.country = get_string(e, {"country", "iso_code"});                    // MaxMind
            if (out.country.empty()) out.country = get_string(e, {"country_code"});  // DB-IP flat
            if (out.country.empty())
                out.country = get_string(e, {"registered_country", "iso_code"});
        }
        if (out.city.empty()) {
            MMDB_entry_data_s city{};
            const char* path[] = {"city", nullptr};
            if (MMDB_aget_value(&e, &city, path) == MMDB_SUCCESS && city.has_data) {
                if (city.type == MMDB_DATA_TYPE_UTF8_STRING)
                    out.city = string_of(city);  // DB-IP flat: "city": "Amsterdam"
                else if (city.type == MMDB_DATA_TYPE_MAP)
                    out.city = get_string(e, {"city", "names", "en"});
            }
        }
        if (out.asn == 0) {
            MMDB_entry_data_s asn{};
            const char* path[] = {"autonomous_system_number", nullptr};
            if (MMDB_aget_value(&e, &asn, path) == MMDB_SUCCESS && asn.has_data) {
                switch (asn.type) {
                    case MMDB_DATA_TYPE_UINT16:
                        out.asn = asn.uint16;
                        break;
                    case MMDB_DATA_TYPE_UINT32:
                        out.asn = asn.uint32;
                        break;
                    case MMDB_DATA_TYPE_UINT64:
                        out.asn = static_cast<std::uint32_t>(asn.uint64);
                        break;
                    case MMDB_DATA_TYPE_INT32:
                        out.asn = static_cast<std::uint32_t>(asn.int32);
                        break;
                    default:
                        break;
                }
            }
        }
        if (out.org.empty()) out.org = get_string(e, {"autonomous_system_organization"});
        return true;
    } catch (...) {
        return false;  // std::bad_alloc only: the lookup is skipped, counted by the caller
    }
}

std::vector<std::string> geoip_search_path() {
    return {"/usr/share/GeoIP", "/var/lib/GeoIP", FLOWTOP_SOURCE_GEOIP_DIR,
            std::string(FLOWTOP_DATA_DIR) + "/geoip"};
}

GeoIp GeoIp::open(const std::vector<std::string>& paths, std::vector<std::string>& notes) {
    GeoIp geo;
    std::vector<std::string> files = paths;
    if (files.empty()) {
        for (const auto& dir : geoip_search_path()) {
            std::error_code ec;
            std::vector<std::string> here;
            for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
                 it.increment(ec))
                if (it->path().extension() == ".mmdb") here.push_back(it->path().string());
            // GeoLite2-ASN, -City, -Country: deterministic order, the richest files first.
            std::sort(here.begin(), here.end());
            files.insert(files.end(), here.begin(), here.end());
        }
        if (files.empty()) {
            std::string where;
            for (const auto& d : geoip_search_path()) where += (where.empty() ? "" : ", ") + d;
            notes.push_back("no GeoIP database found (looked in " + where +
                            "; see --geoip-db): countries stay empty");
            return geo;
        }
    }
    for (const auto& f : files) {
        try {
            geo.add(GeoDb(f));
        } catch (const Error& e) {
            notes.push_back(std::string(e.what()) + ": skipped");
        }
    }
    return geo;
}

GeoResult GeoIp::lookup(const Addr& addr, Family family) const noexcept {
    GeoResult r;
    try {
        if (!skip_lookup(addr, family))
            for (const auto& db : dbs_) {
                db.lookup(addr, family, r);
                if (!r.country.empty() && !r.city.empty() && !r.org.empty() && r.asn) break;
            }
        if (r.country.empty()) {
            if (const char* label = special_label(addr, family)) {
                r.country = k_special_country;
                if (r.org.empty()) r.org = label;
            }
        }
    } catch (...) {
    }
    return r;
}

GeoWorker::GeoWorker(std::shared_ptr<const GeoIp> geo, std::size_t queue_size)
    : geo_(std::move(geo)), queries_(queue_size), answers_(queue_size) {
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

GeoWorker::~GeoWorker() {
    thread_.request_stop();
    posted_.fetch_add(1, std::memory_order_release);
    posted_.notify_one();
    if (thread_.joinable()) thread_.join();
}

bool GeoWorker::post(const GeoQuery& query) noexcept {
    GeoQuery q = query;
    if (!queries_.push(std::move(q))) return false;
    posted_.fetch_add(1, std::memory_order_release);
    posted_.notify_one();
    return true;
}

bool GeoWorker::poll(GeoAnswer& answer) noexcept { return answers_.pop(answer); }

void GeoWorker::run(std::stop_token stop) noexcept {
    std::uint64_t seen = 0;
    GeoQuery q;
    while (!stop.stop_requested()) {
        if (!queries_.pop(q)) {
            posted_.wait(seen, std::memory_order_acquire);
            seen = posted_.load(std::memory_order_acquire);
            continue;
        }
        GeoAnswer a{q.addr, q.family, geo_->lookup(q.addr, q.family)};
        // The answer queue is as large as the query queue and the writer drains it every tick:
        // when it is full anyway, wait a little rather than lose the answer.
        while (!answers_.push(std::move(a))) {
            if (stop.stop_requested()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
}

}  // namespace flowtop::enrich
