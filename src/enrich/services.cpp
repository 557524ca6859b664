#include "flowtop/enrich/services.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flowtop/util/error.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::enrich {

namespace {

std::uint32_t key(std::uint8_t proto, std::uint16_t port) {
    return std::uint32_t{proto} << 16 | port;
}

}  // namespace

void ServiceTable::load_text(std::string_view text, const std::string& file, std::uint8_t proto,
                             std::vector<std::string>& warnings) {
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        line = trim_blanks(line);
        if (line.empty()) continue;

        auto where = file + ":" + std::to_string(line_no) + ": ";
        auto comma = line.find(',');
        if (comma == std::string_view::npos) {
            warnings.push_back(where + "expected \"port, name\", got \"" + quote_input(line) +
                               "\"");
            continue;
        }
        auto port_text = trim_blanks(line.substr(0, comma));
        auto name = trim_blanks(line.substr(comma + 1));
        unsigned port = 0;
        auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535 ||
            port_text.empty()) {
            warnings.push_back(where + "bad port \"" + quote_input(port_text) + "\" (0-65535)");
            continue;
        }
        if (name.empty()) {
            warnings.push_back(where + "missing service name after \"" + quote_input(port_text) +
                               ",\"");
            continue;
        }
        if (name.size() > k_max_service_name) {
            warnings.push_back(where + "service name \"" + quote_input(name, 32) +
                               "\" is longer than " + std::to_string(k_max_service_name) +
                               " characters");
            continue;
        }
        // A NUL or an escape in a name would cut a CSV row or reach a terminal raw.
        if (name.find_first_of(" \t,") != std::string_view::npos || !is_clean(name)) {
            warnings.push_back(where + "bad service name \"" + quote_input(name) +
                               "\" (one word of printable characters expected)");
            continue;
        }
        auto [it, inserted] =
            names_.try_emplace(key(proto, static_cast<std::uint16_t>(port)), name);
        if (!inserted && it->second != name)
            warnings.push_back(where + "port " + std::to_string(port) + " already named \"" +
                               it->second + "\"; ignoring \"" + std::string(name) + "\"");
    }
}

void ServiceTable::load_file(const std::string& path, std::uint8_t proto,
                             std::vector<std::string>& warnings) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(errno_message("cannot read " + path, errno));
    std::ostringstream text;
    text << in.rdbuf();
    load_text(text.str(), path, proto, warnings);
}

const std::string* ServiceTable::lookup(std::uint8_t proto, std::uint16_t port) const {
    auto it = names_.find(key(proto, port));
    return it == names_.end() ? nullptr : &it->second;
}

std::vector<std::string> conf_search_path(const std::string& conf_dir) {
    std::vector<std::string> dirs;
    if (!conf_dir.empty()) dirs.push_back(conf_dir);
    dirs.emplace_back("/etc/flowtop");
    dirs.emplace_back(FLOWTOP_DATA_DIR);
#ifdef FLOWTOP_SOURCE_CONF_DIR
    // Development builds only (FLOWTOP_DEV_PATHS): an installed flowtop trusts no checkout.
    dirs.emplace_back(FLOWTOP_SOURCE_CONF_DIR);
#endif
    return dirs;
}

ServiceTable load_services(const std::string& conf_dir, std::vector<std::string>& warnings) {
    ServiceTable table;
    const auto dirs = conf_search_path(conf_dir);
    for (auto [file, proto] :
         {std::pair{"tcp.conf", IPPROTO_TCP}, std::pair{"udp.conf", IPPROTO_UDP}}) {
        bool found = false;
        for (const auto& dir : dirs) {
            auto path = dir + "/" + file;
            std::error_code ec;
            if (!std::filesystem::is_regular_file(path, ec)) continue;
            try {
                table.load_file(path, static_cast<std::uint8_t>(proto), warnings);
                found = true;
                break;
            } catch (const Error& e) {
                warnings.emplace_back(e.what());
            }
        }
        if (!found) {
            std::string where;
            for (const auto& d : dirs) where += (where.empty() ? "" : ", ") + d;
            warnings.push_back(std::string("no ") + file + " found in " + where +
                               ": ports are shown as numbers");
        }
    }
    return table;
}

}  // namespace flowtop::enrich
