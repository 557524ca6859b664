#pragma once
// Netlink datagrams recorded from a real kernel by tests/tools/record_netlink: each is a 4-byte
// little-endian length followed by the bytes.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace flowtop::test {

inline std::vector<std::vector<std::byte>> load_datagrams(const std::string& name) {
    std::vector<std::vector<std::byte>> out;
    std::string path = std::string(FLOWTOP_TEST_DATA) + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return out;
    std::uint32_t len = 0;
    while (std::fread(&len, 4, 1, f) == 1) {
        std::vector<std::byte> d(len);
        if (std::fread(d.data(), 1, len, f) != len) break;
        out.push_back(std::move(d));
    }
    std::fclose(f);
    return out;
}

}  // namespace flowtop::test
