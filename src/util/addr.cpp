#include "flowtop/util/addr.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace flowtop {

Addr Addr::v4(std::uint32_t network_order) {
    Addr a;
    std::memcpy(a.bytes.data(), &network_order, 4);
    return a;
}

Addr Addr::v6(const void* sixteen_bytes) {
    Addr a;
    std::memcpy(a.bytes.data(), sixteen_bytes, 16);
    return a;
}

std::string Addr::to_string(Family family) const {
    char buf[INET6_ADDRSTRLEN] = {};
    int af = family == Family::ipv4 ? AF_INET : AF_INET6;
    if (!inet_ntop(af, bytes.data(), buf, sizeof buf)) return "?";
    return buf;
}

std::optional<std::pair<Addr, Family>> parse_addr(std::string_view text) {
    std::string s(text);
    Addr a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return std::pair{a, Family::ipv4};
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return std::pair{a, Family::ipv6};
    return std::nullopt;
}

}  // namespace flowtop
