// flowtop-asn-mmdb: turns ip-location-db's ASN CSV ranges (npm @ip-location-db/asn:
// "first,last,asn,organisation" one a line, IPv4 and IPv6) into one MaxMind DB file that
// flowtop's GeoIP code reads like GeoLite2-ASN (autonomous_system_number / _organization).
// No mmdb edition of that package exists on npm, and converting once at install time keeps
// flowtop's start-up free of parsing 30 MB of CSV: lookups stay libmaxminddb's mmap.
//
//   flowtop-asn-mmdb OUT.mmdb IN.csv...
//
// Writes OUT through a temporary file in the same directory and rename(), so a running
// flowtop sees the old database or the new one, never half of one. Format: "MaxMind DB File
// Format Specification" 2.0, an IPv6 tree with 32-bit records, IPv4 under ::/96.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using u128 = unsigned __int128;

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// --- the data section ---------------------------------------------------------------------

constexpr int k_utf8 = 2, k_map = 7, k_uint16 = 5, k_uint32 = 6, k_uint64 = 9, k_array = 11;

void control(std::string& out, int type, std::size_t size) {
    auto first = static_cast<unsigned char>((type <= 7 ? type : 0) << 5);
    std::string extra;
    if (size < 29) {
        first |= static_cast<unsigned char>(size);
    } else if (size < 285) {
        first |= 29;
        extra += static_cast<char>(size - 29);
    } else if (size < 65821) {
        first |= 30;
        extra += static_cast<char>((size - 285) >> 8);
        extra += static_cast<char>((size - 285) & 0xff);
    } else {
        throw Failure("value too large for the data section");
    }
    out += static_cast<char>(first);
    if (type > 7) out += static_cast<char>(type - 7);
    out += extra;
}

void put_string(std::string& out, std::string_view s) {
    control(out, k_utf8, s.size());
    out += s;
}

void put_uint(std::string& out, int type, std::uint64_t n) {
    std::string bytes;
    for (; n; n >>= 8) bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
    control(out, type, bytes.size());
    out += bytes;
}

// --- the search tree ----------------------------------------------------------------------

// A record is a child node index, a data id with the top bit set, or empty.
constexpr std::uint32_t k_empty = 0xffffffffu;
constexpr std::uint32_t k_data_bit = 0x80000000u;

class Writer {
  public:
    // Inserts addr/len (addr's top `len` bits of 128) pointing at the (asn, org) record.
    void insert(u128 addr, int len, std::uint32_t asn, const std::string& org) {
        const std::uint32_t id = data_id(asn, org);
        std::size_t node = 0;
        for (int i = 0; i < len; ++i) {
            const int bit = static_cast<int>((addr >> (127 - i)) & 1);
            std::uint32_t rec = nodes_[node].rec[bit];
            if (i == len - 1) {
                // The ranges do not overlap, so this slot is still free; keep the first if not.
                if (rec == k_empty) nodes_[node].rec[bit] = k_data_bit | id;
                return;
            }
            if (rec == k_empty) {
                rec = static_cast<std::uint32_t>(nodes_.size());
                if (rec >= k_data_bit) throw Failure("too many networks");
                nodes_.push_back({});  // may move the nodes: index, never a reference
                nodes_[node].rec[bit] = rec;
            } else if (rec & k_data_bit) {
                return;  // inside a wider network already inserted: keep it
            }
            node = rec;
        }
    }

    std::size_t networks() const { return inserted_; }
    void count() { ++inserted_; }

    std::string build() const {
        std::string out;
        const auto count = static_cast<std::uint32_t>(nodes_.size());
        out.reserve(nodes_.size() * 8 + data_.size() + 256);
        auto u32be = [&](std::uint32_t v) {
            for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xff);
        };
        for (const auto& n : nodes_)
            for (std::uint32_t rec : n.rec) {
                if (rec == k_empty)
                    u32be(count);  // "no data"
                else if (rec & k_data_bit)
                    u32be(count + 16 + offsets_[rec & ~k_data_bit]);
                else
                    u32be(rec);
            }
        out.append(16, '\0');  // data section separator
        out += data_;
        out += "\xAB\xCD\xEFMaxMind.com";
        control(out, k_map, 9);
        put_string(out, "node_count");
        put_uint(out, k_uint32, count);
        put_string(out, "record_size");
        put_uint(out, k_uint16, 32);
        put_string(out, "ip_version");
        put_uint(out, k_uint16, 6);
        put_string(out, "database_type");
        put_string(out, "ip-location-db-asn");
        put_string(out, "languages");
        control(out, k_array, 1);
        put_string(out, "en");
        put_string(out, "binary_format_major_version");
        put_uint(out, k_uint16, 2);
        put_string(out, "binary_format_minor_version");
        put_uint(out, k_uint16, 0);
        put_string(out, "build_epoch");
        put_uint(out, k_uint64, static_cast<std::uint64_t>(std::time(nullptr)));
        put_string(out, "description");
        control(out, k_map, 1);
        put_string(out, "en");
        put_string(out,
                   "AS numbers and organisations from ip-location-db (RouteViews, DB-IP, NRO), "
                   "CC BY 4.0, converted by flowtop-asn-mmdb");
        return out;
    }

  private:
    struct Node {
        std::uint32_t rec[2] = {k_empty, k_empty};
    };

    // One data record per (asn, organisation): ~80k of them for ~500k ranges.
    std::uint32_t data_id(std::uint32_t asn, const std::string& org) {
        auto [it, inserted] =
            ids_.try_emplace({asn, org}, static_cast<std::uint32_t>(offsets_.size()));
        if (inserted) {
            offsets_.push_back(static_cast<std::uint32_t>(data_.size()));
            control(data_, k_map, 2);
            put_string(data_, "autonomous_system_number");
            put_uint(data_, k_uint32, asn);
            put_string(data_, "autonomous_system_organization");
            put_string(data_, org);
        }
        return it->second;
    }

    std::vector<Node> nodes_{Node{}};
    std::string data_;
    std::vector<std::uint32_t> offsets_;
    std::map<std::pair<std::uint32_t, std::string>, std::uint32_t> ids_;
    std::size_t inserted_ = 0;
};

// --- CSV ----------------------------------------------------------------------------------

// Splits one CSV line into fields; "..." quotes a field, "" inside quotes is one quote.
bool split_csv(std::string_view line, std::vector<std::string>& fields) {
    fields.clear();
    std::string field;
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            fields.push_back(std::move(field));
            field.clear();
        } else if (c != '\r') {
            field += c;
        }
    }
    fields.push_back(std::move(field));
    return !quoted;
}

// An address as 128 bits, IPv4 in the low 32 (its place under ::/96). Sets *v4.
bool parse_addr(const std::string& text, u128& out, bool& v4) {
    unsigned char b[16] = {};
    if (inet_pton(AF_INET, text.c_str(), b) == 1) {
        v4 = true;
        out = (u128{b[0]} << 24) | (u128{b[1]} << 16) | (u128{b[2]} << 8) | u128{b[3]};
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), b) == 1) {
        v4 = false;
        out = 0;
        for (unsigned char byte : b) out = (out << 8) | byte;
        return true;
    }
    return false;
}

// Inserts first..last (inclusive) as the fewest CIDR blocks, within a `bits`-wide space.
void insert_range(Writer& w, u128 first, u128 last, int bits, std::uint32_t asn,
                  const std::string& org) {
    const int shift = 128 - bits;  // IPv4 blocks sit under ::/96
    for (;;) {
        int size_log = 0;  // the largest aligned block starting at first and ending by last
        while (size_log < bits && size_log + 1 < 128) {
            const u128 size = u128{1} << (size_log + 1);
            if ((first & (size - 1)) != 0 || first + (size - 1) > last ||
                first + (size - 1) < first)
                break;
            ++size_log;
        }
        const u128 block_last = first + ((u128{1} << size_log) - 1);
        w.insert(first, shift + (bits - size_log), asn, org);
        w.count();
        if (block_last >= last) return;
        first = block_last + 1;
    }
}

void load_csv(Writer& w, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Failure(path + ": " + std::strerror(errno));
    std::string line;
    std::vector<std::string> f;
    for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
        if (line.empty() || line == "\r") continue;
        const auto where = path + ":" + std::to_string(line_no) + ": ";
        if (!split_csv(line, f) || f.size() != 4)
            throw Failure(where + "expected \"first,last,asn,organisation\"");
        u128 first = 0, last = 0;
        bool v4a = false, v4b = false;
        if (!parse_addr(f[0], first, v4a) || !parse_addr(f[1], last, v4b) || v4a != v4b ||
            last < first)
            throw Failure(where + "bad address range \"" + f[0] + "," + f[1] + "\"");
        std::uint32_t asn = 0;
        auto [end, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), asn);
        if (ec != std::errc{} || end != f[2].data() + f[2].size())
            throw Failure(where + "bad AS number \"" + f[2] + "\"");
        if (asn == 0) continue;  // "not routed": nothing to tell
        insert_range(w, first, last, v4a ? 32 : 128, asn, f[3]);
    }
    if (in.bad()) throw Failure(path + ": read error");
}

void write_atomically(const std::string& path, const std::string& bytes) {
    std::string tmp = path + ".XXXXXX";
    const int fd = mkstemp(tmp.data());
    if (fd < 0) throw Failure("cannot write " + path + ": " + std::strerror(errno));
    auto fail = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        unlink(tmp.c_str());
        throw Failure(std::string(what) + " " + path + ": " + std::strerror(err));
    };
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("cannot write");
        done += static_cast<std::size_t>(n);
    }
    if (fchmod(fd, 0644) != 0) fail("cannot set the mode of");
    if (fsync(fd) != 0) fail("cannot sync");
    if (::close(fd) != 0) {
        unlink(tmp.c_str());
        throw Failure("cannot write " + path + ": " + std::strerror(errno));
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        unlink(tmp.c_str());
        throw Failure("cannot replace " + path + ": " + std::strerror(err));
    }
}

}  // namespace

int main(int argc, char* argv[]) {
    if (argc < 3 || std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help") {
        std::fprintf(argc < 3 ? stderr : stdout,
                     "Usage: flowtop-asn-mmdb OUT.mmdb IN.csv...\n"
                     "Converts ip-location-db ASN CSV ranges (first,last,asn,organisation) "
                     "into one mmdb file.\n");
        return argc < 3 ? 2 : 0;
    }
    try {
        Writer w;
        for (int i = 2; i < argc; ++i) load_csv(w, argv[i]);
        if (w.networks() == 0) throw Failure("no networks in the input");
        write_atomically(argv[1], w.build());
        std::fprintf(stderr, "flowtop-asn-mmdb: wrote %s (%zu networks)\n", argv[1], w.networks());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "flowtop-asn-mmdb: %s\n", e.what());
        return 1;
    }
}
