#pragma once
// Process attribution as a tick hook: the writer only drains results and posts the keys of
// unattributed flows (never blocking); a worker thread matches them to sockets (sock_diag, in
// the network namespace the worker was started in) and sockets to processes (/proc).
//
// A short-lived client is gone by the next tick, so the worker also listens for conntrack NEW
// events itself and attributes locally-ended flows at once, while the process still holds the
// socket. An attribution, once made, stays in the row for the flow's lifetime. A client that
// closes its socket within about a millisecond of its first packet can still win that race on a
// loaded machine: its flow then shows the socket's user at most (TCP), or nothing (UDP).
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "flowtop/table/collector.hpp"

namespace flowtop::enrich {

struct ProcAttributorConfig {
    std::string proc_root = "/proc";
    std::size_t queue_capacity = 16384;  // requests per hand-over; more wait for the next tick
    bool watch_new_flows = true;         // the conntrack NEW listener above
    int attempts = 3;  // ticks a flow with a local end but no socket found is retried
    // Only rows of this collector source (one watched namespace among several); all when unset.
    std::optional<std::uint16_t> source = std::nullopt;
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

class ProcAttributor : public table::TickHook {
  public:
    // Starts the worker in the calling thread's network namespace. Throws flowtop::Error when
    // sock_diag cannot be opened.
    explicit ProcAttributor(ProcAttributorConfig config = {});
    ~ProcAttributor() override;
    ProcAttributor(const ProcAttributor&) = delete;
    ProcAttributor& operator=(const ProcAttributor&) = delete;

    void on_tick(table::FlowTable& table, StringPool& strings, std::uint64_t now_ns) override;

    const ProcAttributorStats& stats() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowtop::enrich
