#include "flowtop/util/settings_ledger.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include "flowtop/util/handle.hpp"
#include "flowtop/util/os.hpp"

namespace flowtop {
namespace {

struct Claim {
    std::string name, found, set;
};

struct LedgerState {
    std::vector<Claim> claims;
    std::vector<std::string> holders;
};

// Names and values come from a file others may have written: only plain words are taken.
bool plain_word(const std::string& s, bool dots) noexcept {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || (dots && c == '.');
    });
}

bool plain_value(const std::string& s) noexcept {
    return !s.empty() && s.size() <= 20 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

LedgerState parse_state(const std::string& text) {
    LedgerState state;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string kind;
        words >> kind;
        if (kind == "claim") {
            Claim c;
            words >> c.name >> c.found >> c.set;
            if (plain_word(c.name, true) && plain_value(c.found) && plain_value(c.set))
                state.claims.push_back(std::move(c));
        } else if (kind == "holder") {
            std::string h;
            words >> h;
            if (plain_word(h, true) && h.find("..") == std::string::npos)
                state.holders.push_back(std::move(h));
        }
    }
    return state;
}

std::string format_state(const LedgerState& state) {
    std::string out = "# flowtop: kernel settings flowtop turned on in this network namespace\n";
    for (const auto& c : state.claims)
        out += "claim " + c.name + " " + c.found + " " + c.set + "\n";
    for (const auto& h : state.holders) out += "holder " + h + "\n";
    return out;
}

std::string holder_path(const std::string& dir, const std::string& name) {
    return dir + "/holder-" + name;
}

// A holder is alive while its file is locked. A file whose lock can be taken belongs to a
// flowtop (and guardian) that are both gone: it is removed on the way.
bool holder_alive(const std::string& dir, const std::string& token) noexcept {
    // A token is HOLDER.N: one reference of the process HOLDER (a process may join a
    // namespace more than once, each guard with its own reference).
    const std::string path = holder_path(dir, token.substr(0, token.find('.')));
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return false;
    if (flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
        unlink(path.c_str());
        return false;
    }
    return errno == EWOULDBLOCK;
}

void drop_holders(LedgerState& state, const std::string& dir, const std::string& self) {
    std::erase_if(state.holders,
                  [&](const std::string& h) { return h == self || !holder_alive(dir, h); });
}

// The namespace's file, locked; reopened when another process removed it meanwhile (it locked
// a file that no longer has a name).
class LockedFile {
  public:
    // mode: 0664 in a directory a group shares (see flowtop(8), CAPABILITIES), else 0644.
    bool open(const std::string& path, mode_t mode) noexcept {
        for (int tries = 0; tries < 20; ++tries) {
            fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode));
            if (!fd_) return false;
            struct stat own {};
            if (fstat(fd_.get(), &own) == 0 && own.st_uid == geteuid() &&
                (own.st_mode & 07777) != mode)
                fchmod(fd_.get(), mode);  // past the umask
            while (flock(fd_.get(), LOCK_EX) != 0)
                if (errno != EINTR) return false;
            struct stat held {
            }, named{};
            if (fstat(fd_.get(), &held) == 0 && stat(path.c_str(), &named) == 0 &&
                held.st_ino == named.st_ino && held.st_dev == named.st_dev && held.st_nlink > 0)
                return true;
        }
        return false;
    }
    std::string read() const {
        std::string text;
        char buf[4096];
        for (off_t off = 0; text.size() < (1u << 16);) {
            const ssize_t n = os::pread_full(fd_.get(), buf, sizeof buf, off);
            if (n <= 0) break;
            text.append(buf, static_cast<std::size_t>(n));
            off += n;
        }
        return text;
    }
    void write(const std::string& text) const noexcept {
        if (ftruncate(fd_.get(), 0) == 0) [[maybe_unused]]
            auto n = os::pwrite_full(fd_.get(), text.data(), text.size(), 0);
    }

  private:
    UniqueFd fd_;
};

bool dir_usable(const std::string& dir, std::string& why) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        why = std::string(std::strerror(errno));
        return false;
    }
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0) {
        why = std::strerror(errno);
        return false;
    }
    // Anyone who could write there could make flowtop write chosen values or skip a restore.
    if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
        (st.st_mode & S_IWOTH)) {
        why = "not a directory owned by root (or this user) that only its owner's group may write";
        return false;
    }
    if (access(dir.c_str(), W_OK) != 0) {
        why = std::strerror(errno);
        return false;
    }
    return true;
}

std::mutex g_holders_mutex;
std::map<std::string, LedgerHolder> g_holders;

}  // namespace

bool setting_is_on(const std::string& value) noexcept { return !value.empty() && value != "0"; }

std::string read_setting(int fd) noexcept {
    char buf[64];
    const ssize_t n = os::pread_full(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return {};
    std::size_t len = static_cast<std::size_t>(n);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\t')) --len;
    try {
        return std::string(buf, len);
    } catch (...) {
        return {};
    }
}

bool write_setting(int fd, const std::string& value) noexcept {
    char buf[32];
    if (value.size() + 1 > sizeof buf) return false;
    value.copy(buf, value.size());
    buf[value.size()] = '\n';
    return os::pwrite_full(fd, buf, value.size() + 1, 0) == static_cast<ssize_t>(value.size() + 1);
}

LedgerHolder ledger_holder(const std::string& dir) {
    std::lock_guard lock(g_holders_mutex);
    // A forked child is a holder of its own: the parent's lock says nothing about the child.
    static pid_t g_owner = getpid();
    if (g_owner != getpid()) {
        for (auto& [d, h] : g_holders)
            if (h.fd >= 0) close(h.fd);
        g_holders.clear();
        g_owner = getpid();
    }
    if (auto it = g_holders.find(dir); it != g_holders.end()) {
        LedgerHolder h = it->second;
        it->second.note.clear();  // told once
        return h;
    }
    LedgerHolder h;
    std::string why;
    if (dir_usable(dir, why)) {
        std::uint32_t random = 0;
        if (getrandom(&random, sizeof random, 0) != sizeof random) random = 0;
        char name[48];
        std::snprintf(name, sizeof name, "%d-%08x", static_cast<int>(getpid()), random);
        const std::string path = holder_path(dir, name);
        UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (fd && flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
            const std::string pid = std::to_string(getpid()) + "\n";
            [[maybe_unused]] auto n = ::write(fd.get(), pid.data(), pid.size());
            h.name = name;
            h.fd = fd.release();
        } else {
            why = std::strerror(errno);
            if (fd) unlink(path.c_str());
        }
    }
    if (h.name.empty())
        h.note = "cannot share the kernel settings with other flowtops through " + dir + " (" +
                 why + "): each puts back only what still holds the value it wrote";
    g_holders[dir] = h;
    g_holders[dir].note.clear();
    return h;
}

void remove_ledger_holder(const std::string& dir, const std::string& name) noexcept {
    if (dir.empty() || name.empty()) return;
    try {
        unlink(holder_path(dir, name).c_str());
    } catch (...) {
    }
}

void remove_ledger_holders() noexcept {
    std::lock_guard lock(g_holders_mutex);
    for (auto& [dir, h] : g_holders) {
        if (h.name.empty()) continue;
        remove_ledger_holder(dir, h.name);
        close(h.fd);
        h.fd = -1;
        h.name.clear();
    }
}

NamespaceLedger::NamespaceLedger(std::string dir, std::uint64_t ns_inode, std::string holder)
    : dir_(std::move(dir)), holder_(std::move(holder)) {
    if (dir_.empty() || holder_.empty() || ns_inode == 0) return;
    path_ = dir_ + "/netns-" + std::to_string(ns_inode);
    struct stat st {};
    if (stat(dir_.c_str(), &st) == 0 && (st.st_mode & S_IWGRP)) mode_ = 0664;
    static std::atomic<unsigned> g_references{0};
    if (holder_.find('.') == std::string::npos)
        holder_ += "." + std::to_string(g_references.fetch_add(1) + 1);
}

void NamespaceLedger::join(std::vector<LedgerSetting>& settings,
                           std::vector<std::string>& warnings) {
    LockedFile file;
    const bool shared = !path_.empty() && file.open(path_, mode_);
    if (!path_.empty() && !shared)
        warnings.push_back("cannot use " + path_ + " (" + std::strerror(errno) +
                           "): other flowtops in this namespace are not told what it changes");
    LedgerState state = shared ? parse_state(file.read()) : LedgerState{};
    if (shared) drop_holders(state, dir_, holder_);
    for (auto& s : settings) {
        if (s.fd < 0) continue;
        const std::string now = read_setting(s.fd);
        auto claim = std::find_if(state.claims.begin(), state.claims.end(),
                                  [&](const Claim& c) { return c.name == s.name; });
        if (claim != state.claims.end()) {
            if (claim->set == now) {
                // Another flowtop's (or a dead one's, adopted): the last to leave puts it back.
                s.claimed = true;
                s.on = setting_is_on(now);
                s.found = claim->found;
                s.set = claim->set;
                continue;
            }
            state.claims.erase(claim);  // someone else changed it since: no longer flowtop's
        }
        s.found = now;
        if (setting_is_on(now)) {
            s.on = true;  // an administrator's: never written
            continue;
        }
        if (write_setting(s.fd, "1")) {
            s.on = s.claimed = true;
            s.set = "1";
            state.claims.push_back({s.name, s.found, s.set});
        } else {
            warnings.push_back(s.name + " is off and cannot be turned on (" + std::strerror(errno) +
                               "); flowtop runs without it");
        }
    }
    if (!shared) return;
    state.holders.push_back(holder_);
    file.write(format_state(state));
}

void NamespaceLedger::leave(std::vector<LedgerSetting>& settings,
                            std::vector<std::string>& messages) noexcept {
    try {
        auto put_back = [&](const std::string& name, const std::string& found,
                            const std::string& set) {
            auto s = std::find_if(settings.begin(), settings.end(),
                                  [&](const LedgerSetting& x) { return x.name == name; });
            if (s == settings.end() || s->fd < 0) return;
            const std::string now = read_setting(s->fd);
            if (now == set) {
                if (!write_setting(s->fd, found))
                    messages.push_back("could not put " + name + " back to " + found + " (" +
                                       std::strerror(errno) + "): set it by hand: sysctl -w " +
                                       name + "=" + found);
            } else
                messages.push_back(name + " is left at " + (now.empty() ? "?" : now) +
                                   ", as someone else set it while flowtop ran");
        };
        LockedFile file;
        if (!path_.empty() && file.open(path_, mode_)) {
            LedgerState state = parse_state(file.read());
            drop_holders(state, dir_, holder_);
            if (!state.holders.empty()) {
                file.write(format_state(state));  // the others still need what is on
            } else {
                for (const auto& c : state.claims) put_back(c.name, c.found, c.set);
                unlink(path_.c_str());
            }
        } else {
            for (const auto& s : settings)
                if (s.claimed) put_back(s.name, s.found, s.set);
        }
    } catch (...) {
    }
    for (auto& s : settings) s.claimed = false;
}

void NamespaceLedger::disown(const std::string& name) noexcept {
    try {
        LockedFile file;
        if (path_.empty() || !file.open(path_, mode_)) return;
        LedgerState state = parse_state(file.read());
        std::erase_if(state.claims, [&](const Claim& c) { return c.name == name; });
        file.write(format_state(state));
    } catch (...) {
    }
}

}  // namespace flowtop
