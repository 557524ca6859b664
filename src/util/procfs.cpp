#include "flowtop/util/procfs.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <vector>

#include "flowtop/util/handle.hpp"

namespace flowtop {
namespace {

bool is_hex_id(std::string_view s) {
    if (s.size() < 12) return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

// "docker-<id>.scope" / "libpod-<id>.scope" (systemd cgroup driver) or a bare "<id>" under a
// docker/ or libpod parent (cgroupfs driver).
std::string container_in(std::string_view part, std::string_view parent) {
    auto strip = [](std::string_view s, std::string_view prefix) -> std::string_view {
        if (!s.starts_with(prefix)) return {};
        s.remove_prefix(prefix.size());
        if (s.ends_with(".scope")) s.remove_suffix(6);
        return s;
    };
    if (auto id = strip(part, "docker-"); is_hex_id(id))
        return "docker:" + std::string(id.substr(0, 12));
    if (auto id = strip(part, "libpod-"); is_hex_id(id)) {
        if (id.starts_with("conmon-")) return {};
        return "podman:" + std::string(id.substr(0, 12));
    }
    if (is_hex_id(part) && part.size() == 64) {
        if (parent == "docker") return "docker:" + std::string(part.substr(0, 12));
        if (parent.starts_with("libpod")) return "podman:" + std::string(part.substr(0, 12));
    }
    return {};
}

}  // namespace

std::string read_small_file(const std::string& path, std::size_t limit) {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    std::string out;
    char buf[4096];
    while (out.size() < limit) {
        ssize_t n = read(fd.get(), buf, sizeof(buf));
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

std::string container_of_cgroup(std::string_view file) {
    std::string unit;
    // Prefer the v2 line ("0::/..."); v1 has one line per controller, the name=systemd one
    // carries the unit.
    std::string_view v2, v1;
    for (std::size_t pos = 0; pos < file.size();) {
        std::size_t end = file.find('\n', pos);
        if (end == std::string_view::npos) end = file.size();
        std::string_view line = file.substr(pos, end - pos);
        pos = end + 1;
        auto colon2 = line.find(':', line.find(':') + 1);
        if (colon2 == std::string_view::npos) continue;
        std::string_view path = line.substr(colon2 + 1);
        if (line.starts_with("0::"))
            v2 = path;
        else if (line.find(":name=systemd:") != std::string_view::npos)
            v1 = path;
    }
    std::string_view best = !v2.empty() && v2 != "/" ? v2 : v1;
    std::string_view parent;
    std::string_view rest = best;
    while (!rest.empty()) {
        if (rest.front() == '/') {
            rest.remove_prefix(1);
            continue;
        }
        std::size_t slash = rest.find('/');
        std::string_view part = rest.substr(0, slash);
        if (auto c = container_in(part, parent); !c.empty()) return c;
        if ((part.ends_with(".service") || part.ends_with(".scope")) &&
            !part.starts_with("user@") && !part.starts_with("init.scope"))
            unit = part;
        if (part.starts_with("user@") && unit.empty()) unit = part;
        parent = part;
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash);
    }
    return unit;
}

std::string user_name(std::uint32_t uid) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(4096);
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return pw.pw_name;
    return std::to_string(uid);
}

}  // namespace flowtop
