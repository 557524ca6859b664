#pragma once
// Alerts as readers see them: plain values in an immutable log that rides along with every
// frame. The writer's detectors fill it (flowtop/detect); the live view, batch output and the
// --alert-exec hook only read it. Every change of an alert is a new version with a higher
// sequence number, so a reader that skips frames still sees each alert (in its latest form).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowtop/ct/flow_record.hpp"

namespace flowtop::table {

enum class AlertKind : std::uint8_t {
    port_scan,     // one source, many ports of one host
    host_sweep,    // one source, one port of many hosts
    syn_flood,     // many sources, one local port, half-open or unreplied
    fan_out,       // one local source, many flows to one remote host:port (or a jump)
    exfiltration,  // many bytes out of a local host or LAN client
    new_country,   // first contact with a country (or one outside --allow-country)
    new_service,   // inbound flows accepted on a port not seen while learning
    long_lived,    // a flow open longer than long.after
    odd_port,      // a well-known program on a port not its own
};
inline constexpr int k_alert_kinds = 9;
enum class Severity : std::uint8_t { low, medium, high };

const char* alert_kind_name(AlertKind kind) noexcept;
const char* severity_name(Severity severity) noexcept;

struct Alert {
    std::uint64_t id = 0;   // 1, 2, ... in the order raised
    std::uint64_t seq = 0;  // the log sequence of this version (it grows with every change)
    AlertKind kind = AlertKind::port_scan;
    Severity severity = Severity::low;
    std::uint64_t first_ns = 0;  // CLOCK_REALTIME of the first and the latest evidence
    std::uint64_t last_ns = 0;
    std::uint64_t count = 0;     // evidence flows folded into this alert
    std::uint64_t distinct = 0;  // distinct ports, hosts, sources or flows behind it (by kind)
    std::uint64_t bytes = 0;     // bytes of the evidence (exfiltration: sent within the window)
    Family family = Family::ipv4;
    std::uint8_t proto = 0;
    std::string src;                   // the actor: scanner, uploader, new peer, ...
    std::vector<std::string> dsts;     // targets (a sample, at most k_alert_samples)
    std::vector<std::uint16_t> ports;  // ports involved (a sample)
    std::string process;               // comm of the local process, when known
    std::uint32_t pid = 0;
    std::string user;
    std::string container;
    std::string netns;
    std::string country;
    std::string message;             // one human sentence
    std::vector<ct::FlowKey> flows;  // evidence flows (a sample); they carry alert = id
};

inline constexpr std::size_t k_alert_samples = 16;

struct AlertLog {
    std::uint64_t seq = 0;        // the highest Alert::seq in the log
    std::uint64_t raised = 0;     // alerts raised since start
    std::uint64_t dropped = 0;    // old alerts pushed out of the log by newer ones
    std::uint64_t evictions = 0;  // tracked detector state evicted by the memory caps
    std::uint64_t tracked = 0;    // entries of detector state now (sources, ports, flows)
    // The latest version of each alert, by id (oldest first); bounded.
    std::vector<std::shared_ptr<const Alert>> alerts;
};

// Whatever hands the collector an alert log to put in each frame (the detectors).
class AlertSource {
  public:
    virtual ~AlertSource() = default;
    // Writer thread, after the tick's hooks ran.
    virtual std::shared_ptr<const AlertLog> alert_log() const = 0;
};

}  // namespace flowtop::table
