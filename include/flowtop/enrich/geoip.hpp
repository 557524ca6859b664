#pragma once
// GeoIP lookups in mmdb files (libmaxminddb): MaxMind GeoLite2/GeoIP2 and the flat DB-IP /
// ip-location-db schema, IPv4 and IPv6, several databases at once (country, city, ASN).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/enrich/dns.hpp"
#include "flowtop/util/addr.hpp"

struct MMDB_s;

namespace flowtop::enrich {

struct GeoResult {
    std::string country;  // ISO 3166 code, or k_special_country for special-purpose addresses
    std::string city;
    std::string org;  // AS organisation, or the special-purpose label
    std::uint32_t asn = 0;
    bool empty() const noexcept { return country.empty() && city.empty() && org.empty() && !asn; }
};

// Country code given to addresses that no database places in a country: private, loopback,
// link-local, documentation, multicast, ... (their kind goes to org, e.g. "private network").
inline constexpr const char* k_special_country = "--";

// The label of a special-purpose address ("private network", "loopback", "link-local",
// "documentation", "multicast", "unspecified", "shared address space"), or nullptr for a
// global one.
const char* special_label(const Addr& addr, Family family) noexcept;
// Private, loopback, link-local, multicast and unspecified addresses are never looked up:
// no database places them. Documentation ranges are looked up first (tests map them) and get
// their label only when no database has them.
bool skip_lookup(const Addr& addr, Family family) noexcept;

// One open mmdb file.
class GeoDb {
  public:
    // Throws flowtop::Error naming the file when it is missing, unreadable or corrupt.
    explicit GeoDb(const std::string& path);
    ~GeoDb();
    GeoDb(GeoDb&&) noexcept;
    GeoDb& operator=(GeoDb&&) noexcept;

    // Fills the fields of out that are still empty from this database's record, if any.
    // Returns false on a lookup error (e.g. corrupt data section); never throws.
    bool lookup(const Addr& addr, Family family, GeoResult& out) const noexcept;
    const std::string& path() const noexcept { return path_; }
    const std::string& type() const noexcept { return type_; }  // metadata database_type

  private:
    std::string path_;
    std::string type_;
    std::unique_ptr<MMDB_s> mmdb_;
};

// The directories searched when no --geoip-db is given, in order: /usr/share/GeoIP,
// /var/lib/GeoIP (MaxMind GeoLite2 from geoipupdate), <source tree>/data/geoip and
// <share dir>/geoip (scripts/install-geoip's free DB-IP and geo-whois-asn-country files).
std::vector<std::string> geoip_search_path();

class GeoIp {
  public:
    GeoIp() = default;
    // Opens the given files, or (none given) every *.mmdb in the search path, in its order:
    // a field comes from the first database that has it, so a user's MaxMind GeoLite2 files
    // win over the bundled ones. Each problem adds one line to notes and the rest opens.
    static GeoIp open(const std::vector<std::string>& paths, std::vector<std::string>& notes);
    void add(GeoDb db) { dbs_.push_back(std::move(db)); }

    // Special addresses get their label; others merge every database's answer (first wins).
    GeoResult lookup(const Addr& addr, Family family) const noexcept;
    bool empty() const noexcept { return dbs_.empty(); }
    const std::vector<GeoDb>& databases() const noexcept { return dbs_; }

  private:
    std::vector<GeoDb> dbs_;
};

struct GeoQuery {
    Addr addr;
    Family family = Family::ipv4;
};

struct GeoAnswer {
    Addr addr;
    Family family = Family::ipv4;
    GeoResult result;
};

// GeoIP lookups on their own thread. Measured (bench/geoip_bench): a lookup merging the
// default databases costs several microseconds, so a burst of 100k new destinations would
// stall the writer for hundreds of milliseconds; here it only fills a queue.
class GeoWorker {
  public:
    // libmaxminddb lookups on a shared, read-only MMDB_s are thread-safe: the writer may look
    // up a few addresses itself while the worker uses the same databases.
    explicit GeoWorker(std::shared_ptr<const GeoIp> geo, std::size_t queue_size = 8192);
    ~GeoWorker();
    GeoWorker(const GeoWorker&) = delete;
    GeoWorker& operator=(const GeoWorker&) = delete;

    // Writer side, never blocking: false when the queue is full (post again later).
    bool post(const GeoQuery& query) noexcept;
    bool poll(GeoAnswer& answer) noexcept;

  private:
    void run(std::stop_token stop) noexcept;

    std::shared_ptr<const GeoIp> geo_;
    SpscQueue<GeoQuery> queries_;
    SpscQueue<GeoAnswer> answers_;
    std::atomic<std::uint64_t> posted_{0};  // wakes the worker (atomic wait/notify)
    std::jthread thread_;
};

}  // namespace flowtop::enrich
