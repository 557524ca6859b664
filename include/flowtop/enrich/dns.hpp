#pragma once
// Reverse DNS on its own thread with c-ares: the writer posts addresses and drains answers
// through two bounded single-producer/single-consumer queues, so it never waits on the network.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/util/addr.hpp"
#include "flowtop/util/spsc_queue.hpp"

namespace flowtop::enrich {

// PTR answers longer than a DNS name can be (RFC 1035: 253 characters) are cut to it.
inline constexpr std::size_t k_max_dns_name = 253;

struct DnsQuery {
    Addr addr;
    Family family = Family::ipv4;
};

struct DnsAnswer {
    Addr addr;
    Family family = Family::ipv4;
    bool found = false;  // false: no PTR record, or the server failed / timed out
    std::string name;
};

struct DnsConfig {
    std::size_t queue_size = 4096;
    std::size_t max_in_flight = 256;  // queries sent and not yet answered
    std::chrono::milliseconds timeout{2000};
    int tries = 2;
};

class DnsResolver {
  public:
    // Reads the system resolver configuration (/etc/resolv.conf); throws flowtop::Error when
    // c-ares cannot start.
    explicit DnsResolver(DnsConfig config = {});
    ~DnsResolver();
    DnsResolver(const DnsResolver&) = delete;
    DnsResolver& operator=(const DnsResolver&) = delete;

    // Writer side, never blocking: false when the queue is full (post again later).
    bool post(const DnsQuery& query) noexcept;
    bool poll(DnsAnswer& answer) noexcept;

    std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }

    struct Impl;  // the c-ares channel, private to dns.cpp

  private:
    void run(std::stop_token stop) noexcept;

    DnsConfig config_;
    SpscQueue<DnsQuery> queries_;
    SpscQueue<DnsAnswer> answers_;
    std::atomic<std::size_t> in_flight_{0};
    std::unique_ptr<Impl> impl_;
    std::jthread thread_;  // last: stops and joins before the members it uses go away
};

}  // namespace flowtop::enrich
