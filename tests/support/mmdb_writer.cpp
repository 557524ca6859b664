#include "mmdb_writer.hpp"

#include <arpa/inet.h>

#include <ctime>
#include <fstream>
#include <stdexcept>

namespace flowtop::test {

namespace {

// Types of the spec's control byte.
constexpr int k_utf8 = 2, k_map = 7, k_uint16 = 5, k_uint32 = 6, k_uint64 = 9, k_array = 11;

void control(std::vector<std::uint8_t>& out, int type, std::size_t size) {
    std::uint8_t first = static_cast<std::uint8_t>((type <= 7 ? type : 0) << 5);
    std::vector<std::uint8_t> extra;
    if (size < 29) {
        first |= static_cast<std::uint8_t>(size);
    } else if (size < 285) {
        first |= 29;
        extra.push_back(static_cast<std::uint8_t>(size - 29));
    } else if (size < 65821) {
        first |= 30;
        extra.push_back(static_cast<std::uint8_t>((size - 285) >> 8));
        extra.push_back(static_cast<std::uint8_t>(size - 285));
    } else {
        throw std::invalid_argument("mmdb_writer: value too large");
    }
    out.push_back(first);
    if (type > 7) out.push_back(static_cast<std::uint8_t>(type - 7));
    out.insert(out.end(), extra.begin(), extra.end());
}

void put_string(std::vector<std::uint8_t>& out, std::string_view s) {
    control(out, k_utf8, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

void put_uint(std::vector<std::uint8_t>& out, int type, std::uint64_t n) {
    std::vector<std::uint8_t> bytes;
    for (; n; n >>= 8) bytes.insert(bytes.begin(), static_cast<std::uint8_t>(n));
    control(out, type, bytes.size());
    out.insert(out.end(), bytes.begin(), bytes.end());
}

void put_value(std::vector<std::uint8_t>& out, const MmdbValue& v) {
    switch (v.kind) {
        case MmdbValue::Kind::string:
            put_string(out, v.text);
            break;
        case MmdbValue::Kind::uint32:
            put_uint(out, k_uint32, v.number);
            break;
        case MmdbValue::Kind::map:
            control(out, k_map, v.keys.size());
            for (std::size_t i = 0; i < v.keys.size(); ++i) {
                put_string(out, v.keys[i]);
                put_value(out, v.values[i]);
            }
            break;
    }
}

void put_u32be(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

}  // namespace

MmdbValue MmdbValue::str(std::string s) {
    MmdbValue v;
    v.text = std::move(s);
    return v;
}

MmdbValue MmdbValue::u32(std::uint32_t n) {
    MmdbValue v;
    v.kind = Kind::uint32;
    v.number = n;
    return v;
}

MmdbValue MmdbValue::map(std::vector<std::pair<std::string, MmdbValue>> entries) {
    MmdbValue v;
    v.kind = Kind::map;
    for (auto& [k, val] : entries) {
        v.keys.push_back(k);
        v.values.push_back(val);
    }
    return v;
}

void MmdbWriter::insert(std::string_view cidr, const MmdbValue& value) {
    auto slash = cidr.find('/');
    std::string ip(cidr.substr(0, slash));
    int len = std::stoi(std::string(cidr.substr(slash + 1)));
    std::uint8_t bytes[16] = {};
    if (ip.find(':') == std::string::npos) {
        if (inet_pton(AF_INET, ip.c_str(), bytes + 12) != 1) throw std::invalid_argument(ip);
        len += 96;  // IPv4 lives under ::/96 in an IPv6 tree
    } else if (inet_pton(AF_INET6, ip.c_str(), bytes) != 1) {
        throw std::invalid_argument(ip);
    }
    auto offset = static_cast<std::int64_t>(data_.size());
    put_value(data_, value);

    std::size_t node = 0;
    for (int i = 0; i < len; ++i) {
        int bit = (bytes[i / 8] >> (7 - i % 8)) & 1;
        if (i == len - 1) {
            nodes_[node].data[bit] = offset;
            break;
        }
        if (nodes_[node].child[bit] < 0) {
            nodes_[node].child[bit] = static_cast<std::int64_t>(nodes_.size());
            nodes_.emplace_back();
        }
        node = static_cast<std::size_t>(nodes_[node].child[bit]);
    }
}

std::vector<std::uint8_t> MmdbWriter::build() const {
    std::vector<std::uint8_t> out;
    const auto count = static_cast<std::uint32_t>(nodes_.size());
    for (const auto& n : nodes_) {
        for (int b = 0; b < 2; ++b) {
            std::uint32_t rec = count;  // "no data"
            if (n.child[b] >= 0) rec = static_cast<std::uint32_t>(n.child[b]);
            if (n.data[b] >= 0) rec = count + 16 + static_cast<std::uint32_t>(n.data[b]);
            put_u32be(out, rec);
        }
    }
    out.insert(out.end(), 16, 0);  // data section separator
    out.insert(out.end(), data_.begin(), data_.end());
    const std::string marker = "\xAB\xCD\xEFMaxMind.com";
    out.insert(out.end(), marker.begin(), marker.end());
    control(out, k_map, 9);
    put_string(out, "node_count");
    put_uint(out, k_uint32, count);
    put_string(out, "record_size");
    put_uint(out, k_uint16, 32);
    put_string(out, "ip_version");
    put_uint(out, k_uint16, 6);
    put_string(out, "database_type");
    put_string(out, type_);
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
    put_string(out, "flowtop test fixture");
    return out;
}

std::string MmdbWriter::write(const std::string& path) const {
    auto bytes = build();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + path);
    return path;
}

namespace {

MmdbValue asn(std::uint32_t number, const char* org) {
    return MmdbValue::map({{"autonomous_system_number", MmdbValue::u32(number)},
                           {"autonomous_system_organization", MmdbValue::str(org)}});
}

}  // namespace

std::pair<std::string, std::string> write_maxmind_fixtures(const std::string& dir) {
    auto place = [](const char* cc, const char* name, const char* city) {
        return MmdbValue::map(
            {{"city", MmdbValue::map({{"geoname_id", MmdbValue::u32(2759794)},
                                      {"names", MmdbValue::map({{"en", MmdbValue::str(city)}})}})},
             {"country",
              MmdbValue::map({{"iso_code", MmdbValue::str(cc)},
                              {"names", MmdbValue::map({{"de", MmdbValue::str("Landname")},
                                                        {"en", MmdbValue::str(name)}})}})}});
    };
    MmdbWriter city("GeoLite2-City");
    city.insert("198.51.100.0/24", place("NL", "Netherlands", "Amsterdam"));
    city.insert("2001:db8:1::/48", place("JP", "Japan", "Tokyo"));
    MmdbWriter as("GeoLite2-ASN");
    as.insert("198.51.100.0/24", asn(64500, "Example Transit"));
    as.insert("2001:db8:1::/48", asn(64501, "Example IX"));
    return {city.write(dir + "/GeoLite2-City.mmdb"), as.write(dir + "/GeoLite2-ASN.mmdb")};
}

std::pair<std::string, std::string> write_dbip_fixtures(const std::string& dir) {
    auto place = [](const char* cc, const char* city) {
        return MmdbValue::map({{"city", MmdbValue::str(city)},
                               {"country_code", MmdbValue::str(cc)},
                               {"state1", MmdbValue::str("Somewhere")}});
    };
    MmdbWriter city("dbip-city-lite");
    city.insert("198.51.100.0/24", place("NL", "Amsterdam"));
    city.insert("2001:db8:1::/48", place("JP", "Tokyo"));
    MmdbWriter as("asn");
    as.insert("198.51.100.0/24", asn(64500, "Example Transit"));
    as.insert("2001:db8:1::/48", asn(64501, "Example IX"));
    return {city.write(dir + "/dbip-city.mmdb"), as.write(dir + "/asn.mmdb")};
}

}  // namespace flowtop::test
