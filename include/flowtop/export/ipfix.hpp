#pragma once
// IPFIX export (RFC 7011) of conntrack flows as RFC 5103 biflows: the original direction in the
// plain information elements, the reply direction in the same elements under the reverse
// enterprise number 29305. A record goes out when a flow ends, and for long-lived flows every
// active timeout, with delta counters (what moved since the flow's previous record), so a
// collector's sums over a flow's records equal its conntrack counters at its end.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/export/bounded_queue.hpp"
#include "flowtop/export/ended_flows.hpp"
#include "flowtop/table/tick.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop::exporters {

// RFC 7011 flowEndReason values.
enum class EndReason : std::uint8_t {
    idle_timeout = 1,
    active_timeout = 2,  // an interim record of a flow that goes on
    end_of_flow = 3,     // TCP end state seen
    forced_end = 4,
};

// One biflow record as the encoder writes it.
struct IpfixFlow {
    std::uint32_t domain = 1;  // observation domain: one per watched namespace (source + 1)
    Family family = Family::ipv4;
    std::uint8_t proto = 0;
    ct::Tuple orig;
    ct::Tuple reply;
    bool nat = false;  // post-NAT fields present (the reply tuple is not the original reversed)
    ct::Counters orig_delta;
    ct::Counters reply_delta;
    std::uint64_t start_ms = 0;  // CLOCK_REALTIME
    std::uint64_t end_ms = 0;
    EndReason end_reason = EndReason::end_of_flow;
};

// Template ids: IPv4, IPv6, each without and with the NAT fields.
constexpr std::uint16_t k_template_v4 = 256, k_template_v6 = 257, k_template_v4_nat = 258,
                        k_template_v6_nat = 259;
constexpr std::uint32_t k_reverse_pen = 29305;

// Builds IPFIX messages; keeps each observation domain's sequence number (the count of data
// records sent in it before the message, RFC 7011 section 3.1).
class IpfixEncoder {
  public:
    explicit IpfixEncoder(std::size_t max_message = 1400) : max_message_(max_message) {}

    // A message with every template of `domain`.
    std::vector<std::byte> templates(std::uint32_t domain, std::uint32_t export_time_s);
    // Messages carrying `flows` (all of one domain), each at most max_message bytes.
    void data(std::uint32_t domain, std::span<const IpfixFlow> flows, std::uint32_t export_time_s,
              std::vector<std::vector<std::byte>>& out);
    std::uint32_t sequence(std::uint32_t domain) const;

  private:
    std::size_t max_message_;
    std::unordered_map<std::uint32_t, std::uint32_t> sequence_;
};

// The NAT in force on a conntrack flow: the reply tuple is not the original one reversed.
bool has_nat(const ct::FlowRecord& ct) noexcept;
// A flow's end record, or an interim one (reason active_timeout) with counters since `since`.
IpfixFlow ipfix_flow(const table::FlowRow& row, const ct::Counters& orig_since,
                     const ct::Counters& reply_since, std::uint64_t now_ns, bool interim);

struct IpfixConfig {
    std::string target;  // HOST:PORT (UDP)
    std::chrono::seconds active_timeout{60};
    std::chrono::seconds template_interval{60};  // templates resent this often (and at start)
    std::size_t queue_capacity = 1 << 17;
};

struct IpfixCounters {
    std::atomic<std::uint64_t> records{0};   // data records sent
    std::atomic<std::uint64_t> messages{0};  // datagrams sent
    std::atomic<std::uint64_t> send_errors{0};
    std::atomic<std::uint64_t> lost{0};  // records not sent: queue full or a failed send
};

// The exporter: a tick hook that copies ended (and long-lived) flows into a bounded queue, and
// a thread that encodes and sends them.
class IpfixExporter final : public table::TickHook {
  public:
    // Resolves and connects the UDP socket (throws Error with a clear message).
    explicit IpfixExporter(IpfixConfig config);
    ~IpfixExporter() override;
    void start();  // the sender thread

    void on_tick(table::TickContext& tick) override;
    std::chrono::milliseconds full_pass_period() const noexcept override;
    const IpfixCounters& counters() const noexcept { return counters_; }

  private:
    struct Exported {
        ct::Counters orig;
        ct::Counters reply;
        std::uint64_t at_ns = 0;
    };
    void run(std::stop_token stop);
    void send_batch(std::vector<IpfixFlow>& batch);
    void pace();

    IpfixConfig config_;
    UniqueFd socket_;
    BoundedQueue<IpfixFlow> queue_;
    EndedFlows ended_;
    std::vector<table::FlowRow> final_rows_;
    std::vector<IpfixFlow> out_;
    std::unordered_map<ct::FlowKey, Exported> exported_;  // flows with an interim record
    IpfixEncoder encoder_;
    std::unordered_map<std::uint32_t, std::chrono::steady_clock::time_point> templates_sent_;
    IpfixCounters counters_;
    double tokens_ = 0;
    std::chrono::steady_clock::time_point refill_{};
    std::jthread thread_;
};

// "host:port", "[v6]:port" into an address for connect() or bind(); throws UsageError. With a
// default_host (listening addresses) the host may be left out and the port may be 0.
struct SocketTarget {
    int family = 0;
    std::vector<std::byte> addr;  // sockaddr_in or sockaddr_in6
    std::string text;
};
SocketTarget parse_target(const std::string& text, const char* option, const char* default_host,
                          bool resolve);

}  // namespace flowtop::exporters
