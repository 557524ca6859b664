#include "flowtop/enrich/geoip.hpp"

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "flowtop/util/error.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::enrich {

namespace {

// Where flowtop-geoip-update puts the databases it downloads (replaced by rename).
constexpr const char* k_geoip_state_dir = "/var/lib/flowtop/geoip";

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

namespace {

struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileId&) const = default;
};

std::optional<FileId> file_id(const std::string& path) noexcept {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileId{
        st.st_dev, st.st_ino, st.st_size,
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

}  // namespace

// One MMDB_open of the file: closed when the last lookup using it lets go.
struct GeoDb::Open {
    MMDB_s mmdb{};
    FileId id;
    int watch = -1;
    bool open = false;
    ~Open() {
        signals::unwatch_mapping(watch);
        if (open) MMDB_close(&mmdb);
    }
    bool faulted() const noexcept { return signals::mapping_faulted(watch); }
};

struct GeoDb::State {
    std::atomic<std::shared_ptr<const Open>> current;
    std::optional<FileId> refused;  // the file as it was when it last failed to open
    bool removed_noted = false;
};

namespace {

std::shared_ptr<const GeoDb::Open> open_file(const std::string& path) {
    auto open = std::make_shared<GeoDb::Open>();
    // libmaxminddb's own errors lose errno ("Error opening the specified MaxMind DB file") or
    // name an mmap failure ("No such device" for a directory): say what the file is instead.
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw Error(errno_message("GeoIP database " + path, errno));
    if (S_ISDIR(st.st_mode))
        throw Error("GeoIP database " + path + " is a directory, not an mmdb file");
    if (!S_ISREG(st.st_mode)) throw Error("GeoIP database " + path + " is not a regular file");
    if (st.st_size == 0) throw Error("GeoIP database " + path + " is empty");
    // Identity first: a change between stat and open shows as a mismatch at the next check.
    open->id = file_id(path).value_or(FileId{});
    int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &open->mmdb);
    if (status != MMDB_SUCCESS) {
        int err = errno;  // MMDB_open frees what it allocated on failure
        if (status == MMDB_IO_ERROR) throw Error(errno_message("GeoIP database " + path, err));
        throw Error("GeoIP database " + path + " is not a valid mmdb file (" +
                    MMDB_strerror(status) + ")");
    }
    open->open = true;
    signals::install_handlers();  // the SIGBUS handler that keeps a truncation survivable
    open->watch = signals::watch_mapping(open->mmdb.file_content,
                                         static_cast<std::size_t>(open->mmdb.file_size));
    // libmaxminddb checks the metadata and tree size on open but the data section only on use:
    // walk it once so a truncated file is reported now, naming the file, not at the first lookup.
    MMDB_entry_data_list_s* list = nullptr;
    int verify = MMDB_get_metadata_as_entry_data_list(&open->mmdb, &list);
    MMDB_free_entry_data_list(list);
    if (verify != MMDB_SUCCESS || open->faulted())
        throw Error("GeoIP database " + path + " is corrupt (" +
                    (open->faulted() ? "cut short while reading it" : MMDB_strerror(verify)) + ")");
    return open;
}

}  // namespace

GeoDb::GeoDb(const std::string& path) : path_(path), state_(std::make_unique<State>()) {
    auto open = open_file(path);
    if (open->mmdb.metadata.database_type) type_ = open->mmdb.metadata.database_type;
    state_->current.store(std::move(open));
}

GeoDb::~GeoDb() = default;
GeoDb::GeoDb(GeoDb&&) noexcept = default;
GeoDb& GeoDb::operator=(GeoDb&&) noexcept = default;

bool GeoDb::usable() const noexcept { return state_ && state_->current.load() != nullptr; }

std::string GeoDb::check_file() const {
    auto& st = *state_;
    auto current = st.current.load();
    const auto now = file_id(path_);
    const bool faulted = current && current->faulted();
    if (!now) {
        // Gone from its place; what is mapped is the old inode, which nobody can shrink by
        // name any more. Keep using it until a file appears again.
        if (faulted) st.current.store(nullptr);
        if (st.removed_noted && !faulted) return {};
        st.removed_noted = true;
        return "GeoIP database " + path_ +
               (faulted ? " was cut short and removed while flowtop read it: lookups from it stop"
                        : " was removed: lookups go on with the file opened before");
    }
    st.removed_noted = false;
    if (current && !faulted && *now == current->id) return {};
    if (!current && st.refused && *now == *st.refused) return {};  // said so; unchanged since
    try {
        auto fresh = open_file(path_);
        st.current.store(std::move(fresh));
        st.refused.reset();
        return "GeoIP database " + path_ + " changed on disk: reopened";
    } catch (const Error& e) {
        st.refused = now;
        // Changed in place (same inode) or already cut short: what is mapped is no longer
        // the file that was checked, so its answers cannot be trusted.
        const bool in_place = current && now->dev == current->id.dev && now->ino == current->id.ino;
        if (faulted || in_place || !current) {
            st.current.store(nullptr);
            return std::string(e.what()) +
                   ": it changed while flowtop ran; lookups from it stop until it is valid again";
        }
        return std::string(e.what()) +
               ": it was replaced by a file that cannot be read; lookups go on with the file "
               "opened before";
    }
}

bool GeoDb::lookup(const Addr& addr, Family family, GeoResult& out) const noexcept {
    try {
        const auto open = state_ ? state_->current.load() : nullptr;
        if (!open) return true;  // unusable for now: check_file() said so
        GeoResult mine;
        if (!lookup_in(&open->mmdb, addr, family, mine)) return false;
        // Cut short while it read: what it found came partly from zero pages.
        if (open->faulted()) return false;
        // The name goes with the code it names: from the database that gave the code, or a
        // later one that places the address in the same country.
        if (out.country.empty()) {
            out.country = std::move(mine.country);
            out.country_name = std::move(mine.country_name);
        } else if (out.country_name.empty() && out.country == mine.country) {
            out.country_name = std::move(mine.country_name);
        }
        if (out.city.empty()) out.city = std::move(mine.city);
        if (out.org.empty()) out.org = std::move(mine.org);
        if (out.asn == 0) out.asn = mine.asn;
        return true;
    } catch (...) {
        return false;  // std::bad_alloc only: the lookup is skipped, counted by the caller
    }
}

bool GeoDb::lookup_in(const MMDB_s* mmdb, const Addr& addr, Family family,
                      GeoResult& out) noexcept {
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
        auto res = MMDB_lookup_sockaddr(mmdb, reinterpret_cast<sockaddr*>(&ss), &mmdb_error);
        // An IPv6 address in an IPv4-only file (DB-IP ships one file per family) has no answer.
        if (mmdb_error == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) return true;
        if (mmdb_error != MMDB_SUCCESS) return false;
        if (!res.found_entry) return true;
        auto& e = res.entry;
        if (out.country.empty()) {
            out.country = get_string(e, {"country", "iso_code"});                    // MaxMind
            if (out.country.empty()) out.country = get_string(e, {"country_code"});  // DB-IP flat
            if (out.country.empty()) {
                out.country = get_string(e, {"registered_country", "iso_code"});
                if (!out.country.empty())
                    out.country_name = get_string(e, {"registered_country", "names", "en"});
            } else {
                out.country_name = get_string(e, {"country", "names", "en"});
                if (out.country_name.empty()) out.country_name = get_string(e, {"country_name"});
            }
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
    return {"/usr/share/GeoIP", "/var/lib/GeoIP",
#ifdef FLOWTOP_SOURCE_GEOIP_DIR
            // Development builds only (FLOWTOP_DEV_PATHS): an installed flowtop trusts no
            // checkout.
            FLOWTOP_SOURCE_GEOIP_DIR,
#endif
            k_geoip_state_dir, std::string(FLOWTOP_DATA_DIR) + "/geoip"};
}

GeoIp GeoIp::open(const std::vector<std::string>& paths, std::vector<std::string>& notes) {
    GeoIp geo;
    std::vector<std::string> files = paths;
    if (files.empty()) {
        // flowtop-geoip-update writes fresher copies of the packaged files into
        // /var/lib/flowtop/geoip: a file name opened once shadows the same name further on.
        std::set<std::string> names;
        for (const auto& dir : geoip_search_path()) {
            std::error_code ec;
            std::vector<std::string> here;
            for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
                 it.increment(ec))
                if (it->path().extension() == ".mmdb" &&
                    names.insert(it->path().filename().string()).second)
                    here.push_back(it->path().string());
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

bool GeoIp::check_files(std::vector<std::string>& notes) const {
    bool changed = false;
    for (const auto& db : dbs_) {
        auto note = db.check_file();
        if (note.empty()) continue;
        notes.push_back(std::move(note));
        changed = true;
    }
    return changed;
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
    thread_ = signals::crash_safe_thread([this](std::stop_token stop) { run(stop); });
}

GeoWorker::~GeoWorker() {
    thread_.request_stop();
    posted_.fetch_add(1, std::memory_order_release);
    posted_.notify_one();
    if (thread_.joinable()) thread_.join();
}

bool GeoWorker::post(const GeoQuery& query) noexcept {
    if (!queries_.push(GeoQuery{query})) return false;
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
        // push moves from `a` only when it succeeds, so a retry pushes the whole answer.
        while (!answers_.push(std::move(a))) {  // NOLINT(bugprone-use-after-move)
            if (stop.stop_requested()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
}

}  // namespace flowtop::enrich
