#include "flowtop/util/local_addresses.hpp"

#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "flowtop/util/os.hpp"

namespace flowtop {
namespace {

using IfaddrsPtr = CPtr<ifaddrs, freeifaddrs>;

bool is_loopback(Family family, const Addr& a) noexcept {
    if (family == Family::ipv4) return a.bytes[0] == 127;
    for (std::size_t i = 0; i < 15; ++i)
        if (a.bytes[i]) return false;
    return a.bytes[15] == 1;
}

// RFC 1918, RFC 6598 (carrier-grade NAT, a subscriber's side), link-local, and IPv6 ULA
// (fc00::/7) and link-local (fe80::/10): never routed on the internet, so on our side.
bool is_private(Family family, const Addr& a) noexcept {
    const auto& b = a.bytes;
    if (family == Family::ipv4)
        return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
               (b[0] == 100 && (b[1] & 0xc0) == 64) || (b[0] == 169 && b[1] == 254);
    return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
}

int mask_bits(const sockaddr* mask) noexcept {
    if (!mask) return -1;
    const std::uint8_t* bytes = nullptr;
    int n = 0;
    if (mask->sa_family == AF_INET) {
        bytes = reinterpret_cast<const std::uint8_t*>(
            &reinterpret_cast<const sockaddr_in*>(mask)->sin_addr);
        n = 4;
    } else if (mask->sa_family == AF_INET6) {
        bytes = reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr.s6_addr;
        n = 16;
    } else {
        return -1;
    }
    int bits = 0;
    for (int i = 0; i < n; ++i) bits += __builtin_popcount(bytes[i]);
    return bits;
}

// The interfaces that carry a default route (the thread's namespace: /proc/thread-self/net,
// not /proc/self/net, which is the main thread's).
std::set<std::string> default_route_interfaces() {
    std::set<std::string> out;
    std::ifstream v4("/proc/thread-self/net/route");
    std::string line;
    std::getline(v4, line);  // the column titles
    while (std::getline(v4, line)) {
        std::istringstream f(line);
        std::string iface, dest, gateway, flags, refcnt, use, metric, mask;
        if (f >> iface >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask &&
            dest == "00000000" && mask == "00000000")
            out.insert(iface);
    }
    std::ifstream v6("/proc/thread-self/net/ipv6_route");
    while (std::getline(v6, line)) {
        std::istringstream f(line);
        std::string dest, dest_len, src, src_len, next, metric, refcnt, use, flags, iface;
        if (f >> dest >> dest_len >> src >> src_len >> next >> metric >> refcnt >> use >> flags >>
                iface &&
            dest_len == "00" && iface != "lo")
            out.insert(iface);
    }
    return out;
}

}  // namespace

bool Network::contains(Family f, const Addr& a) const noexcept {
    if (f != family) return false;
    int left = bits;
    for (std::size_t i = 0; i < 16 && left > 0; ++i, left -= 8) {
        const unsigned mask = left >= 8 ? 0xffu : (0xffu << (8 - left)) & 0xffu;
        if ((a.bytes[i] & mask) != (addr.bytes[i] & mask)) return false;
    }
    return true;
}

std::optional<Network> parse_network(std::string_view text) {
    const auto slash = text.find('/');
    auto parsed = parse_addr(text.substr(0, slash));
    if (!parsed) return std::nullopt;
    Network n{parsed->second, parsed->first, parsed->second == Family::ipv4 ? 32 : 128};
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        int bits = -1;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
            bits < 0 || bits > n.bits)
            return std::nullopt;
        n.bits = bits;
    }
    return n;
}

LocalAddresses LocalAddresses::of_current_namespace(std::vector<Network> lans) {
    LocalAddresses out;
    out.set_lans(std::move(lans));
    ifaddrs* raw = nullptr;
    if (os::getifaddrs(&raw) != 0) return out;
    IfaddrsPtr list(raw);
    const auto wan = default_route_interfaces();
    for (const ifaddrs* a = raw; a; a = a->ifa_next) {
        if (!a->ifa_addr) continue;
        Network n;
        if (a->ifa_addr->sa_family == AF_INET) {
            const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
            n = {Family::ipv4, Addr::v4(sin->sin_addr.s_addr), 32};
        } else if (a->ifa_addr->sa_family == AF_INET6) {
            const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
            n = {Family::ipv6, Addr::v6(&sin6->sin6_addr), 128};
        } else {
            continue;
        }
        out.add(n.family, n.addr);
        // Loopback and host routes add nothing; a /0 would make the world a LAN; the network
        // of the WAN interface is the provider's.
        const int bits = mask_bits(a->ifa_netmask);
        if (bits > 0 && bits < n.bits && !(a->ifa_name && wan.contains(a->ifa_name))) {
            n.bits = bits;
            out.add_network(n);
        }
    }
    return out;
}

void LocalAddresses::add(Family family, const Addr& addr) {
    const std::pair<Family, Addr> entry{family, addr};
    auto at = std::lower_bound(addrs_.begin(), addrs_.end(), entry);
    if (at == addrs_.end() || *at != entry) addrs_.insert(at, entry);
}

void LocalAddresses::add_network(const Network& n) {
    if (std::find(networks_.begin(), networks_.end(), n) == networks_.end()) networks_.push_back(n);
}

bool LocalAddresses::contains(Family family, const Addr& addr) const noexcept {
    return is_loopback(family, addr) ||
           std::binary_search(addrs_.begin(), addrs_.end(), std::pair<Family, Addr>{family, addr});
}

bool LocalAddresses::is_lan(Family family, const Addr& addr) const noexcept {
    if (contains(family, addr)) return true;
    auto in = [&](const std::vector<Network>& nets) {
        return std::any_of(nets.begin(), nets.end(),
                           [&](const Network& n) { return n.contains(family, addr); });
    };
    if (!lans_.empty()) return in(lans_);
    return in(networks_) || is_private(family, addr);
}

LanEnd LocalAddresses::lan_client(Family family, const Addr& orig_src, const Addr& orig_dst,
                                  const Addr& reply_src, const Addr& reply_dst) const noexcept {
    const bool dnat = orig_dst != reply_src;
    const bool snat = reply_dst != orig_src;
    const bool src_lan = is_lan(family, orig_src), server_lan = is_lan(family, reply_src);
    if (dnat && server_lan) return LanEnd::reply_src;
    if (snat && src_lan) return LanEnd::orig_src;
    // Another host before this one: on a router a LAN host talking to the router (DNS, DHCP)
    // is that host's flow.
    if (src_lan && !contains(family, orig_src)) return LanEnd::orig_src;
    if (server_lan && !contains(family, reply_src)) return LanEnd::reply_src;
    if (src_lan) return LanEnd::orig_src;
    if (server_lan) return LanEnd::reply_src;
    return LanEnd::none;
}

AddressWatch::AddressWatch() {
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return;
    UniqueFd owned(fd);
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                   RTMGRP_IPV6_ROUTE;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return;
    fd_ = std::move(owned);
}

bool AddressWatch::changed(std::uint64_t now_ns) noexcept {
    if (!fd_) {
        if (now_ns < next_poll_ns_) return false;
        next_poll_ns_ = now_ns + 30'000'000'000ull;
        return true;
    }
    bool any = false;
    char buf[8192];
    for (int i = 0; i < 64; ++i) {  // bounded: a flood of route changes waits for the next tick
        const ssize_t n = os::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            any = true;
            continue;
        }
        // ENOBUFS: we missed some, which is a change too.
        if (n < 0 && errno == ENOBUFS) {
            any = true;
            continue;
        }
        break;
    }
    return any;
}

}  // namespace flowtop
