#pragma once
// Service names by port and protocol, from conf/tcp.conf and conf/udp.conf ("port, name").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowtop::enrich {

// Service names (IANA's are at most 15 characters) longer than this are refused with a warning.
inline constexpr std::size_t k_max_service_name = 32;

class ServiceTable {
  public:
    // Parses one file's text; each malformed or duplicate line adds "file:line: message" to
    // warnings and is skipped, so one bad line never loses the rest. The first name wins.
    void load_text(std::string_view text, const std::string& file, std::uint8_t proto,
                   std::vector<std::string>& warnings);
    // Throws flowtop::Error when the file cannot be read.
    void load_file(const std::string& path, std::uint8_t proto, std::vector<std::string>& warnings);

    // nullptr when the port has no name.
    const std::string* lookup(std::uint8_t proto, std::uint16_t port) const;
    std::size_t size() const noexcept { return names_.size(); }

  private:
    std::unordered_map<std::uint32_t, std::string> names_;  // proto << 16 | port
};

// The directories searched for tcp.conf/udp.conf, first match wins: --conf-dir (if given),
// /etc/flowtop, the installed share dir, and in development builds (FLOWTOP_DEV_PATHS) the
// source tree's conf/.
std::vector<std::string> conf_search_path(const std::string& conf_dir);

// Loads tcp.conf and udp.conf from the first directory of the search path that has each.
// A file that is missing everywhere adds a warning; the table is then empty for it.
ServiceTable load_services(const std::string& conf_dir, std::vector<std::string>& warnings);

}  // namespace flowtop::enrich
