#pragma once
// The seam between flowtop and the kernel's conntrack netlink: the collector talks to this
// interface, the kernel implementation opens real sockets, and tests substitute recorded bytes
// and injected errors (ENOBUFS) without a kernel.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/ct/table_stats.hpp"
#include "flowtop/util/handle.hpp"

struct mnl_socket;

namespace flowtop::ct {

struct RecvResult {
    std::size_t bytes = 0;
    int error = 0;  // 0, EAGAIN (nothing more now), ENOBUFS (events were lost), or another errno
};

class ConntrackIo {
  public:
    virtual ~ConntrackIo() = default;
    // The descriptor to poll for events; -1 when there is none.
    virtual int event_fd() const noexcept = 0;
    // Non-blocking: one datagram of events, or EAGAIN.
    virtual RecvResult recv_events(std::span<std::byte> buf) noexcept = 0;
    // Asks for a full dump of the table; its messages then come from recv_dump.
    virtual void start_dump() = 0;
    // Blocking: the next part of the dump. The parser tells when it is complete (NLMSG_DONE).
    virtual RecvResult recv_dump(std::span<std::byte> buf) noexcept = 0;
    // Asks, in one batch, for the current state of these flows (by original tuple and id); the
    // answers (a conntrack message each, or an error whose sequence number is first_seq plus
    // the flow's index: ENOENT means gone) come from recv_dump. Returns false when this source
    // cannot; the collector then relies on full dumps alone.
    virtual bool request_flows(std::span<const FlowRecord> flows, std::uint32_t first_seq) {
        (void)flows;
        (void)first_seq;
        return false;
    }
    // Reads the table's use, limit and per-CPU counters now (two small requests, apart from
    // the dump's socket). False when this source cannot; the frame then has no table stats.
    virtual bool read_table_stats(TableStats& out) noexcept {
        (void)out;
        return false;
    }
};

// Deletes entries from the conntrack table of the namespace it was opened in
// (IPCTNL_MSG_CT_DELETE by original tuple, zone and id, as `conntrack -D` does). The kernel
// forgets the flow's state; the hosts are not blocked: their next packet makes a new entry
// (or, for TCP mid-stream, is judged by the rules as any packet without state would be).
class FlowDeleter {
  public:
    virtual ~FlowDeleter() = default;
    // 0 when the kernel deleted it; ENOENT when there is no such entry (it ended, or a newer
    // flow has the same tuple: the id keeps that one safe); another errno otherwise.
    virtual int remove(const FlowRecord& flow) noexcept = 0;
};

// Opens a netlink socket in the current network namespace. Throws flowtop::Error as
// open_kernel_conntrack does.
std::unique_ptr<FlowDeleter> open_flow_deleter();

// The per-namespace settings flowtop turns on while it runs: byte/packet counters and flow
// start/stop times exist only for flows created while these are 1.
inline constexpr const char* k_acct_sysctl = "net.netfilter.nf_conntrack_acct";
inline constexpr const char* k_timestamp_sysctl = "net.netfilter.nf_conntrack_timestamp";
// Both, as the sysctl guard of each watched namespace takes them.
inline std::vector<std::string> guarded_sysctls() { return {k_acct_sysctl, k_timestamp_sysctl}; }

struct KernelOptions {
    // Receive buffer for events. The default (~200 kB) loses events at 100k events/s; 64 MB
    // rides out bursts while the writer is busy with a dump.
    int event_buffer_bytes = 64 << 20;
    bool subscribe_events = true;
};

// Opens the netlink sockets in the current network namespace. Throws flowtop::Error with a
// message for the user when permission is missing or conntrack netlink is unavailable.
std::unique_ptr<ConntrackIo> open_kernel_conntrack(const KernelOptions& options = {});

}  // namespace flowtop::ct
