#pragma once
// LAN clients (a router's question: "which host on my LAN is doing this?"). Each flow counts
// for the end on the LAN side (util LocalAddresses::lan_client): the original source of a
// masqueraded flow, the internal server of a port forward. Bytes and rates are the client's:
// sent (from the client) and received (to it), whichever conntrack direction that is.
// Shared by the Clients tab and batch --group client, so the two always agree.
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/enrich/dhcp_leases.hpp"
#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"
#include "flowtop/util/local_addresses.hpp"

namespace flowtop::ui {

// The address of a flow's LAN client (in its record), or null when neither end is on the LAN.
const Addr* lan_client_addr(const LocalAddresses& local, const ct::FlowRecord& ct);

struct ClientRow {
    Family family = Family::ipv4;
    Addr addr;
    std::string address;  // as text
    std::string name;     // from a DHCP lease, else reverse DNS; "" when none
    bool local = false;   // this host itself
    std::uint64_t flows = 0;
    std::uint64_t sent_bytes = 0, received_bytes = 0;  // flows without counters add nothing
    double sent_rate = 0, received_rate = 0;           // the last tick
    double sent_rate_avg[table::k_rate_windows] = {};  // 2 s, 10 s, 40 s
    double received_rate_avg[table::k_rate_windows] = {};
    std::vector<std::string> destinations;  // the busiest remote ends (name or address), <= 3
    std::vector<std::string> countries;     // their countries, busiest first, <= 5
};

// One row per LAN client of `rows`, busiest (tick rate, then bytes, flows, address) first.
std::vector<ClientRow> group_by_client(const table::Snapshot& snap,
                                       std::span<const table::FlowRow* const> rows,
                                       const LocalAddresses& local,
                                       const enrich::LeaseBook* leases);

// "name (address)", or the address alone.
std::string client_label(const ClientRow& c);

// The lease files the options name: --leases/leases (without "none"), else the usual places.
std::vector<std::string> lease_paths(const Options& o);
// The --lan networks (already validated by the option parser).
std::vector<Network> lan_networks(const Options& o);

// One frame of client rows; csv_header: print the CSV header line first.
void write_client_frame(OutputFormat format, std::FILE* out, const table::Snapshot& snap,
                        const std::vector<ClientRow>& rows, bool bits, bool csv_header);

}  // namespace flowtop::ui
