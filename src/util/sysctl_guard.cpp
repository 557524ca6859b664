#include "flowtop/util/sysctl_guard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "flowtop/util/signals.hpp"

namespace flowtop {
namespace {

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
    return s;
}

std::string read_value(int fd) {
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) return {};
    return trim(std::string(buf, static_cast<std::size_t>(n)));
}

bool write_value(int fd, const std::string& bytes) {
    return pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size());
}

}  // namespace

SysctlGuard::SysctlGuard(const std::vector<std::string>& names, std::string root) {
    signals::install_handlers();
    for (const auto& name : names) {
        SysctlState st;
        st.name = name;
        std::string rel = name;
        std::replace(rel.begin(), rel.end(), '.', '/');
        std::string path = root + "/" + rel;

        UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
        int open_err = errno;
        if (!fd) {
            UniqueFd ro(open(path.c_str(), O_RDONLY | O_CLOEXEC));
            if (!ro) {
                warnings_.push_back(name + " is not available (" + std::strerror(open_err) +
                                    "); flowtop runs without it");
                states_.push_back(st);
                continue;
            }
            st.found = read_value(ro.get());
            st.on = st.found != "0" && !st.found.empty();
            if (!st.on)
                warnings_.push_back(name + " is off and cannot be changed (" +
                                    std::strerror(open_err) + "); flowtop runs without it");
            states_.push_back(st);
            continue;
        }
        st.found = read_value(fd.get());
        st.on = st.found != "0" && !st.found.empty();
        if (!st.on) {
            Held h;
            h.restore_bytes = st.found + "\n";
            // Register before changing anything, so a crash between the two still restores.
            h.slot = signals::register_restore_write(fd.get(), h.restore_bytes.data(),
                                                     h.restore_bytes.size());
            if (h.slot < 0) {
                // Without a prepared restore a crash would leave it changed: do not change it.
                warnings_.push_back(name + " is off and is left off (too many settings held); "
                                           "flowtop runs without it");
            } else if (write_value(fd.get(), "1\n")) {
                st.changed = true;
                st.on = true;
                h.fd = std::move(fd);
                held_.push_back(std::move(h));
            } else {
                warnings_.push_back(name + " is off and cannot be turned on (" +
                                    std::strerror(errno) + "); flowtop runs without it");
                signals::release_restore_write(h.slot);
            }
        }
        states_.push_back(st);
    }
}

SysctlGuard::~SysctlGuard() { restore(); }

void SysctlGuard::restore() noexcept {
    for (auto& h : held_) {
        if (!h.fd) continue;
        write_value(h.fd.get(), h.restore_bytes);
        signals::release_restore_write(h.slot);
        h.fd.reset();
    }
    for (auto& st : states_)
        if (st.changed) {
            st.on = false;
            st.changed = false;
        }
}

bool SysctlGuard::is_on(const std::string& name) const noexcept {
    for (const auto& st : states_)
        if (st.name == name) return st.on;
    return false;
}

}  // namespace flowtop
