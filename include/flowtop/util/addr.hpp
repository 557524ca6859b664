#pragma once
// An IPv4 or IPv6 address as plain bytes, so rows stay memcpy-copyable.
#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flowtop {

enum class Family : std::uint8_t { ipv4 = 4, ipv6 = 6 };

struct Addr {
    // IPv4 addresses use the first four bytes; the rest stay zero.
    std::array<std::uint8_t, 16> bytes{};

    static Addr v4(std::uint32_t network_order);
    static Addr v6(const void* sixteen_bytes);
    std::string to_string(Family family) const;
    // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads the defaulted <=>.
    friend auto operator<=>(const Addr&, const Addr&) = default;
};

// Parses "192.0.2.1" or "2001:db8::1".
std::optional<std::pair<Addr, Family>> parse_addr(std::string_view text);

}  // namespace flowtop
