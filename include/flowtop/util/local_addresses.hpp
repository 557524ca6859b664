#pragma once
// The addresses that are this host's, in one network namespace: those of its interfaces, and
// loopback (127.0.0.0/8 and ::1: the kernel delivers every one of them locally, though lo
// carries 127.0.0.1 only). One set serves the process attributor (which end of a flow can hold
// a socket here) and the filter language (dir:in, dir:out), so the two never disagree.
//
// The same set says which addresses are the LAN (a router's clients): this host's own, the
// networks of its interfaces except those of an interface that carries a default route (the
// WAN side: its network is the ISP's, not ours), and the private and ULA ranges; or, when the
// user names the LAN with --lan, exactly those networks plus this host's own addresses.
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "flowtop/util/addr.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop {

// Which ends of a flow are local. The client is the original tuple's source, the server the
// reply tuple's source: behind a DNAT that is the real server, while a NAT address of ours
// (orig.dst of a DNAT, reply.dst of a masquerade) is no end, since no socket ever holds it.
struct FlowEnds {
    bool client = false;  // orig.src is local: the flow goes out from here
    bool server = false;  // reply.src is local: the flow comes in to here
    bool forwarded() const noexcept { return !client && !server; }  // routed through
};

// A network: "192.0.2.0/24", "2001:db8::/32", or a bare address (a host prefix).
struct Network {
    Family family = Family::ipv4;
    Addr addr;
    int bits = 0;
    bool contains(Family f, const Addr& a) const noexcept;
    friend bool operator==(const Network&, const Network&) = default;
};
std::optional<Network> parse_network(std::string_view text);

// Which end of a flow is the LAN client.
enum class LanEnd : std::uint8_t {
    none,       // neither end is on the LAN
    orig_src,   // the original source: a client going out (masqueraded or not)
    reply_src,  // the reply's source: the internal server of a port forward (DNAT)
};

class LocalAddresses {
  public:
    // The interface addresses (and networks) of the calling thread's network namespace
    // (getifaddrs); only loopback when they cannot be read. `lans` (--lan) replaces the guessed
    // LAN networks when not empty.
    static LocalAddresses of_current_namespace(std::vector<Network> lans = {});

    void add(Family family, const Addr& addr);
    // An attached network (an interface's, not a default route's).
    void add_network(const Network& n);
    // Says the LAN explicitly: the guessed networks and the private ranges no longer count.
    void set_lans(std::vector<Network> lans) { lans_ = std::move(lans); }

    bool contains(Family family, const Addr& addr) const noexcept;
    FlowEnds ends(Family family, const Addr& orig_src, const Addr& reply_src) const noexcept {
        return {contains(family, orig_src), contains(family, reply_src)};
    }
    // This host's own, or on its LAN.
    bool is_lan(Family family, const Addr& addr) const noexcept;
    // The LAN client of a flow: for a DNAT'ed flow the internal server it was forwarded to, for
    // a masqueraded one the original source, otherwise the end on the LAN (another host's before
    // this host's own).
    LanEnd lan_client(Family family, const Addr& orig_src, const Addr& orig_dst,
                      const Addr& reply_src, const Addr& reply_dst) const noexcept;

    std::size_t size() const noexcept { return addrs_.size(); }
    const std::vector<Network>& networks() const noexcept { return networks_; }
    friend bool operator==(const LocalAddresses&, const LocalAddresses&) = default;

  private:
    std::vector<std::pair<Family, Addr>> addrs_;  // sorted, for a binary search per lookup
    std::vector<Network> networks_;               // the interfaces' networks (not the WAN's)
    std::vector<Network> lans_;                   // --lan: when set, the only LAN networks
};

// Tells when this namespace's addresses or routes change (rtnetlink multicast groups), so the
// set above is re-read then and not on a timer. Made in the namespace it watches.
class AddressWatch {
  public:
    AddressWatch();  // never throws: without the socket, changed() says true every 30 s
    // True when something changed since the last call (drains what arrived; never blocks).
    bool changed(std::uint64_t now_ns) noexcept;

  private:
    UniqueFd fd_;
    std::uint64_t next_poll_ns_ = 0;
};

}  // namespace flowtop
