#include "common.hpp"

#include <cstdio>

namespace flowtop::detect {

std::string addr_text(const Addr& a, Family f) { return a.to_string(f); }

std::string duration_text(std::uint64_t ns) {
    const double s = static_cast<double>(ns) / 1e9;
    char buf[32];
    if (s < 1) return "under 1 s";
    if (s < 90)
        std::snprintf(buf, sizeof buf, "%.0f s", s);
    else if (s < 5400)
        std::snprintf(buf, sizeof buf, "%.0f min", s / 60);
    else if (s < 172800)
        std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
    else
        std::snprintf(buf, sizeof buf, "%.1f d", s / 86400);
    return buf;
}

std::string bytes_text(std::uint64_t bytes) {
    const double b = static_cast<double>(bytes);
    char buf[32];
    if (b >= 1e9)
        std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
    else if (b >= 1e6)
        std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
    else if (b >= 1e3)
        std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    return buf;
}

std::string process_text(const Ctx& c, const table::FlowRow& row) {
    if (!row.pid) return row.forwarded ? "" : std::string();
    return std::string(c.str(row.comm)) + " (pid " + std::to_string(row.pid) + ")";
}

void fill_context(const Ctx& c, table::Alert& a, const table::FlowRow& row) {
    a.family = row.ct.family;
    a.proto = row.ct.proto;
    if (row.pid) {
        a.pid = row.pid;
        a.process = std::string(c.str(row.comm));
        a.user = std::string(c.str(row.user));
        a.container = std::string(c.str(row.container));
    }
    if (row.netns != k_no_string) a.netns = std::string(c.str(row.netns));
}

void add_sample(std::vector<std::string>& v, const std::string& s) {
    if (v.size() < table::k_alert_samples && std::find(v.begin(), v.end(), s) == v.end())
        v.push_back(s);
}

void add_sample(std::vector<std::uint16_t>& v, std::uint16_t p) {
    if (v.size() < table::k_alert_samples && std::find(v.begin(), v.end(), p) == v.end())
        v.push_back(p);
}

}  // namespace flowtop::detect
