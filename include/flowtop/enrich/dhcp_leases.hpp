#pragma once
// Names of LAN clients from the DHCP server's lease files, which a router already has: a client
// shows as "laptop-anna" without any DNS. Three formats, told apart by their content:
//   dnsmasq       "EXPIRY MAC|IAID ADDR HOSTNAME|* CLIENT-ID|*" a line (dnsmasq.leases)
//   ISC dhcpd     "lease ADDR { ... client-hostname \"NAME\"; ... }" blocks (dhcpd.leases, an
//                 append-only log: the last block of an address wins; a free one drops it)
//   systemd-networkd  KEY=VALUE lines with ADDRESS= and HOSTNAME= (/run/systemd/netif/leases/*)
// A client chooses its own host name: every name is untrusted text, capped to a DNS label's
// 63 bytes and sanitized (util/text) before anyone sees it.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowtop/util/addr.hpp"

namespace flowtop::enrich {

inline constexpr std::size_t k_lease_name_max = 63;

struct Lease {
    Family family = Family::ipv4;
    Addr addr;
    std::string name;  // sanitized, at most k_lease_name_max bytes, never empty
    friend bool operator==(const Lease&, const Lease&) = default;
};

// The leases named in one file's text, in file order (later ones for an address win).
std::vector<Lease> parse_leases(std::string_view text);

// The lease files (or directories of them) in the usual places of dnsmasq, ISC dhcpd and
// systemd-networkd.
std::vector<std::string> default_lease_paths();

// The names of all the files, re-read when a file's size, mtime or inode changes.
class LeaseBook {
  public:
    LeaseBook() = default;
    explicit LeaseBook(std::vector<std::string> paths) : paths_(std::move(paths)) {}
    // Stats each file (cheap) and re-reads the changed ones; true when any name changed.
    bool refresh();
    // The name of an address; empty when no lease names it.
    std::string_view name(Family family, const Addr& addr) const;
    std::size_t size() const { return names_.size(); }
    const std::vector<std::string>& paths() const { return paths_; }

  private:
    struct Seen {
        std::uint64_t dev = 0, ino = 0, size = 0;
        std::int64_t mtime_ns = 0;
        std::vector<Lease> leases;
        friend bool operator==(const Seen&, const Seen&) = default;
    };
    std::vector<std::string> paths_;
    std::map<std::string, Seen> files_;  // by file path (a directory's files each)
    std::map<std::pair<Family, Addr>, std::string> names_;
};

}  // namespace flowtop::enrich
