#pragma once
// The detectors' settings: documented defaults, each settable by name ("scan.ports=100") from
// the command line (--detect) or a config file (the same names as keys). settings() lists them
// for help text, the man page and the config parser.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flowtop::detect {

struct DetectConfig {
    // Port scan / host sweep: half-open or unreplied flows from one source.
    bool scan = true;
    std::uint32_t scan_ports = 100;  // distinct ports of one host
    std::uint32_t scan_hosts = 50;   // distinct hosts on one port
    std::chrono::seconds scan_window{60};
    // SYN flood / DDoS against a local port.
    bool flood = true;
    std::uint32_t flood_sources = 100;  // distinct sources with half-open/unreplied flows
    std::chrono::seconds flood_window{10};
    // DDoS participation: one local source, many flows to one remote host:port, or a jump.
    bool fanout = true;
    std::uint32_t fanout_flows = 500;
    std::chrono::seconds fanout_window{10};
    std::uint32_t fanout_jump = 2000;       // new flows of one local source within the window...
    std::uint32_t fanout_jump_factor = 10;  // ...and this many times the window before
    // Exfiltration: bytes sent by a local host / LAN client (per process) to the outside.
    bool exfil = true;
    std::uint64_t exfil_bytes = 32ull << 20;
    std::chrono::seconds exfil_window{300};
    std::vector<std::string> exfil_allow;  // CIDR, two-letter country or process name
    // First contact with a country.
    bool country = true;
    std::chrono::seconds country_learn{300};
    std::vector<std::string> allow_country;  // non-empty: every other country alerts
    // New listening service.
    bool service = true;
    std::chrono::seconds service_learn{300};
    std::vector<std::string> service_allow;  // ports ("8080" or "8080/tcp") that never alert
    // Long-lived flows and well-known programs on odd ports (low severity).
    bool long_lived = true;
    std::chrono::seconds long_after{6 * 3600};
    bool odd_port = true;
    // Shared.
    std::chrono::seconds fold{300};    // repeats within this long fold into one alert
    std::uint32_t max_tracked = 4096;  // sources/ports/keys each detector tracks at most
    std::uint32_t max_alerts = 1000;   // alerts kept in the log
};

struct Setting {
    const char* name;  // "scan.ports"
    std::string (*get)(const DetectConfig&);
    // Throws UsageError with a message naming the setting.
    void (*set)(DetectConfig&, std::string_view value);
    const char* help;
};

const std::vector<Setting>& settings();
// "name=value": sets one; throws UsageError for an unknown name or a bad value.
void apply_setting(DetectConfig& config, std::string_view assignment);
// Every setting with its current value, one "name=value  help" a line.
std::string describe(const DetectConfig& config);

}  // namespace flowtop::detect
