#include "flowtop/table/alert.hpp"

namespace flowtop::table {

const char* alert_kind_name(AlertKind kind) noexcept {
    switch (kind) {
        case AlertKind::port_scan:
            return "port_scan";
        case AlertKind::host_sweep:
            return "host_sweep";
        case AlertKind::syn_flood:
            return "syn_flood";
        case AlertKind::fan_out:
            return "fan_out";
        case AlertKind::exfiltration:
            return "exfiltration";
        case AlertKind::new_country:
            return "new_country";
        case AlertKind::new_service:
            return "new_service";
        case AlertKind::long_lived:
            return "long_lived";
        case AlertKind::odd_port:
            return "odd_port";
    }
    return "unknown";
}

const char* severity_name(Severity severity) noexcept {
    switch (severity) {
        case Severity::low:
            return "low";
        case Severity::medium:
            return "medium";
        case Severity::high:
            return "high";
    }
    return "low";
}

}  // namespace flowtop::table
