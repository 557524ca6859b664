#pragma once
// A small MaxMind DB writer for test fixtures (format: "MaxMind DB File Format Specification"
// 2.0): an IPv6 search tree with 32-bit records (IPv4 networks live under ::/96), a data
// section of strings, unsigned integers and maps, and the metadata map libmaxminddb checks.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowtop::test {

struct MmdbValue {
    enum class Kind { string, uint32, map } kind = Kind::string;
    std::string text;
    std::uint32_t number = 0;
    std::vector<std::string> keys;  // map keys, in order, parallel to values
    std::vector<MmdbValue> values;

    static MmdbValue str(std::string s);
    static MmdbValue u32(std::uint32_t n);
    static MmdbValue map(std::vector<std::pair<std::string, MmdbValue>> entries);
};

class MmdbWriter {
  public:
    explicit MmdbWriter(std::string database_type) : type_(std::move(database_type)) {}
    // cidr: "198.51.100.0/24" or "2001:db8:1::/48"; networks must not overlap.
    void insert(std::string_view cidr, const MmdbValue& value);
    std::vector<std::uint8_t> build() const;
    // Writes build() to path; returns path.
    std::string write(const std::string& path) const;

  private:
    struct Node {
        std::int64_t child[2] = {-1, -1};  // node index
        std::int64_t data[2] = {-1, -1};   // offset in the data section
    };
    std::string type_;
    std::vector<Node> nodes_{Node{}};
    std::vector<std::uint8_t> data_;
};

// The fixtures of the enrichment tests, for documentation networks: 198.51.100.0/24 -> NL,
// Amsterdam, AS64500 "Example Transit"; 2001:db8:1::/48 -> JP, Tokyo, AS64501 "Example IX".
// Each returns {city database, ASN database} written into dir.
std::pair<std::string, std::string> write_maxmind_fixtures(const std::string& dir);
std::pair<std::string, std::string> write_dbip_fixtures(const std::string& dir);

}  // namespace flowtop::test
