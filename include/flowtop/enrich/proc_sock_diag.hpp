#pragma once
// Local sockets from the kernel's NETLINK_SOCK_DIAG (inet_diag) dump, and matching conntrack
// flows to them. Receiving is separate from parsing so tests replay recorded buffers.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/util/addr.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop::enrich {

struct SocketEntry {
    Family family = Family::ipv4;  // IPv4-mapped IPv6 addresses are reported as IPv4
    std::uint8_t proto = 0;        // IPPROTO_TCP / IPPROTO_UDP
    std::uint8_t state = 0;        // TCP_* state (UDP: 1 connected, 7 unconnected)
    bool wildcard_v6 = false;      // bound to [::]: also receives IPv4 (unless v6only)
    Addr local;
    Addr remote;
    std::uint16_t local_port = 0;  // host order
    std::uint16_t remote_port = 0;
    std::uint32_t uid = 0;
    std::uint32_t inode = 0;  // 0 for sockets no process holds (TIME_WAIT, orphans)
};

struct SockDiagParseResult {
    std::size_t messages = 0;
    std::size_t errors = 0;  // malformed messages, skipped
    bool done = false;       // NLMSG_DONE seen
    int netlink_error = 0;   // errno from an NLMSG_ERROR message
};

// Appends the sockets of every inet_diag message in buf. `proto` is the protocol the dump was
// asked for: the messages do not carry it. Never throws for bad input.
SockDiagParseResult parse_sock_diag(std::span<const std::byte> buf, std::uint8_t proto,
                                    std::vector<SocketEntry>& out);

// A NETLINK_SOCK_DIAG socket opened in the calling thread's network namespace.
class SockDiag {
  public:
    SockDiag();  // throws flowtop::Error
    // Appends every socket of one protocol and family. Returns false when the dump failed
    // (counted by the caller; the kernel may lack the module, e.g. no udp_diag).
    bool dump(std::uint8_t proto, Family family, std::vector<SocketEntry>& out);
    // The raw bytes of the last dump, kept only when recording (for test fixtures).
    bool record = false;
    std::vector<std::byte> recorded;

  private:
    UniqueFd fd_;
    std::vector<std::byte> buf_;
    std::uint32_t seq_ = 0;
};

// Which end of a flow a socket matched.
enum class LocalEnd : std::uint8_t { client, server };

struct SocketMatch {
    std::uint32_t inode = 0;
    std::uint32_t uid = 0;
    LocalEnd end = LocalEnd::client;
};

// The sockets of one dump, indexed for matching conntrack tuples.
class SocketIndex {
  public:
    void build(const std::vector<SocketEntry>& sockets);
    // For a local client the original tuple's source is the socket; for a local server the
    // reply tuple's source is (it is also the real address behind a DNAT). Connected sockets
    // win over listeners and unconnected UDP sockets. Only the ends whose address is local to
    // the host are tried, so a forwarded flow never matches a wildcard-bound port by chance.
    std::optional<SocketMatch> match(const ct::FlowRecord& flow, bool client_local,
                                     bool server_local) const;
    std::size_t size() const noexcept { return exact_.size() + bound_.size(); }

  private:
    struct Key {
        Addr local;
        Addr remote;
        std::uint16_t local_port = 0;
        std::uint16_t remote_port = 0;
        std::uint8_t proto = 0;
        Family family = Family::ipv4;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept;
    };
    struct Owner {
        std::uint32_t inode;
        std::uint32_t uid;
    };
    std::optional<Owner> find_exact(std::uint8_t proto, Family family, const ct::Tuple& t) const;
    std::optional<Owner> find_bound(std::uint8_t proto, Family family, const Addr& addr,
                                    std::uint16_t port) const;

    std::unordered_map<Key, Owner, KeyHash> exact_;  // connected: both ends known
    std::unordered_map<Key, Owner, KeyHash> bound_;  // listeners and unconnected UDP
};

}  // namespace flowtop::enrich
