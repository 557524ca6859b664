#pragma once
// GeoIP lookups in mmdb files (libmaxminddb): MaxMind GeoLite2/GeoIP2 and the flat DB-IP /
// ip-location-db schema, IPv4 and IPv6, several databases at once (country, city, ASN).
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/util/addr.hpp"
#include "flowtop/util/spsc_queue.hpp"

struct MMDB_s;

namespace flowtop::enrich {

struct GeoResult {
    std::string country;       // ISO 3166 code, or k_special_country for special-purpose addresses
    std::string country_name;  // the database's English name of that country ("" if none)
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

// One open mmdb file. libmaxminddb maps the file (MMDB_MODE_MMAP is its only mode, and 1.7
// has no open-from-memory), so the file may change under a running flowtop:
//  - replaced by rename (geoipupdate, `mv`): the mapping keeps the old inode, intact; the
//    next check_file() sees another inode and opens the new file once it is valid;
//  - truncated or rewritten in place (`cp new.mmdb old.mmdb` truncates first): a read past
//    the new end would raise SIGBUS. The mapping is watched (signals::watch_mapping): the
//    handler puts zero pages there and marks it, the lookup's answer is thrown away, and
//    check_file() stops using the mapping, says so once, and reopens the file when it is
//    valid again (its size, mtime or inode changed and it opens cleanly).
// A private copy (memfd) would avoid the fault altogether but costs the files' whole size in
// memory that cannot be evicted (150 MB for the bundled DB-IP set), on every start.
class GeoDb {
  public:
    // Throws flowtop::Error naming the file when it is missing, unreadable or corrupt.
    explicit GeoDb(const std::string& path);
    ~GeoDb();
    GeoDb(GeoDb&&) noexcept;
    GeoDb& operator=(GeoDb&&) noexcept;

    // Fills the fields of out that are still empty from this database's record, if any.
    // Returns false on a lookup error (e.g. corrupt data section, or the file was cut short
    // while it read); never throws. Thread-safe against check_file().
    bool lookup(const Addr& addr, Family family, GeoResult& out) const noexcept;
    const std::string& path() const noexcept { return path_; }
    const std::string& type() const noexcept { return type_; }  // metadata database_type

    // Compares the file with the one opened (device, inode, size, mtime) and reopens or stops
    // using it as above. Returns a note for the user when something changed (once per change),
    // or an empty string. One caller at a time (the writer thread).
    std::string check_file() const;
    // False once the file became unusable and until it is valid again.
    bool usable() const noexcept;

    struct Open;

  private:
    struct State;
    static bool lookup_in(const MMDB_s* mmdb, const Addr& addr, Family family,
                          GeoResult& out) noexcept;
    std::string path_;
    std::string type_;
    std::unique_ptr<State> state_;
};

// The directories searched when no --geoip-db is given, in order: /usr/share/GeoIP,
// /var/lib/GeoIP (MaxMind GeoLite2 from geoipupdate), <source tree>/data/geoip (development
// builds only, FLOWTOP_DEV_PATHS), /var/lib/flowtop/geoip (flowtop-geoip-update) and
// <share dir>/geoip (the packaged DB-IP, geo-whois-asn-country and ASN files). A file name
// found in an earlier directory shadows the same name in later ones.
std::vector<std::string> geoip_search_path();

class GeoIp {
  public:
    GeoIp() = default;
    // Opens the given files, or (none given) every *.mmdb in the search path, in its order:
    // a field comes from the first database that has it, so a user's MaxMind GeoLite2 files
    // win over the bundled ones. Each problem adds one line to notes and the rest opens.
    static GeoIp open(const std::vector<std::string>& paths, std::vector<std::string>& notes);
    void add(GeoDb db) { dbs_.push_back(std::move(db)); }
    // check_file() of every database; returns true when one was reopened or dropped (cached
    // answers are stale then). Notes go to `notes`.
    bool check_files(std::vector<std::string>& notes) const;

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
