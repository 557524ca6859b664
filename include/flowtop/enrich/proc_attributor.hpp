#pragma once
// Process attribution as a tick hook: the writer only drains results and posts the keys of
// unattributed flows (never blocking); one worker thread matches them to sockets (sock_diag) and
// sockets to processes (/proc), for every watched namespace. Each namespace has its own
// sock_diag socket, NEW-flow listener and local-address set, opened inside it when it is added
// (sockets keep their namespace); a request goes to those of its flow's source. Socket inodes
// are unique host-wide (one sockfs) and /proc is the host's, so one inode cache and one /proc
// walk serve them all.
//
// A short-lived client is gone by the next tick, so the worker also listens for conntrack NEW
// events itself and attributes locally-ended flows at once, while the process still holds the
// socket. An attribution, once made, stays in the row for the flow's lifetime. A client that
// closes its socket within about a millisecond of its first packet can still win that race on a
// loaded machine: its flow then shows the socket's user at most (TCP), or nothing (UDP).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "flowtop/netns/namespace_source.hpp"
#include "flowtop/table/tick.hpp"

namespace flowtop::enrich {

struct ProcAttributorConfig {
    std::string proc_root = "/proc";
    std::size_t queue_capacity = 16384;  // requests per hand-over; more wait for the next tick
    bool watch_new_flows = true;         // the conntrack NEW listener above
    int attempts = 3;  // ticks a flow with a local end but no socket found is retried
};

struct ProcAttributorStats {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> attributed{0};
    std::atomic<std::uint64_t> forwarded{0};
    std::atomic<std::uint64_t> unknown{0};
    std::atomic<std::uint64_t> dumps{0};       // sock_diag dumps (4 per batch: tcp/udp x v4/v6)
    std::atomic<std::uint64_t> proc_reads{0};  // /proc opens and readlinks
    std::atomic<std::uint64_t> dropped{0};     // requests not posted: queue busy or full
};

class ProcAttributor : public table::TickHook, public netns::NamespaceUser {
  public:
    // Starts the worker, which serves no namespace until one is added. Throws flowtop::Error
    // when it cannot start.
    explicit ProcAttributor(ProcAttributorConfig config = {});
    ~ProcAttributor() override;
    ProcAttributor(const ProcAttributor&) = delete;
    ProcAttributor& operator=(const ProcAttributor&) = delete;

    // Attributes the flows of collector source `source`, whose namespace is the calling
    // thread's: its sock_diag socket, NEW-flow listener and addresses are opened here. On the
    // writer thread or before it runs. Throws flowtop::Error when sock_diag cannot be opened.
    void add_namespace(std::uint16_t source) override;
    // Its flows get no more attribution; the worker closes its sockets.
    void remove_namespace(std::uint16_t source) noexcept override;

    // Posts the flows born this tick (and those to retry), applies the answers that came.
    void on_tick(table::TickContext& tick) override;

    const ProcAttributorStats& stats() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowtop::enrich
