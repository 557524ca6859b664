#include "flowtop/enrich/dhcp_leases.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "flowtop/util/handle.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::enrich {
namespace {

// A leases file is small (a line or a block per client); a bigger one is not ours to slurp.
constexpr std::size_t k_max_file = 4u << 20;

bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && space(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !space(line[i])) ++i;
        if (i > start) out.push_back(line.substr(start, i - start));
    }
    return out;
}

std::string clean_name(std::string_view raw) {
    if (raw.empty() || raw == "*") return {};
    // Capped before sanitizing (bounded work), and after (escapes grow it), at a character.
    std::string s = sanitize(cap_utf8(raw, k_lease_name_max));
    return std::string(cap_utf8(s, k_lease_name_max));
}

void keep(std::vector<Lease>& out, std::string_view addr, std::string_view name) {
    auto a = parse_addr(addr);
    std::string n = clean_name(name);
    if (a && !n.empty()) out.push_back({a->second, a->first, std::move(n)});
}

void parse_dnsmasq(std::string_view text, std::vector<Lease>& out) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto end = std::min(text.find('\n', pos), text.size());
        const auto w = words(text.substr(pos, end - pos));
        pos = end + 1;
        // "duid ..." opens the IPv6 part; its lines have the same ADDR and HOSTNAME places.
        if (w.size() >= 4 && w[0] != "duid") keep(out, w[2], w[3]);
    }
}

void parse_networkd(std::string_view text, std::vector<Lease>& out) {
    std::string_view addr, name;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto end = std::min(text.find('\n', pos), text.size());
        const auto line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.starts_with("ADDRESS=")) addr = line.substr(8);
        if (line.starts_with("HOSTNAME=")) name = line.substr(9);
    }
    keep(out, addr, name);
}

// ISC dhcpd: tokens with quoted strings (backslash escapes the next byte) and # comments.
class IscLexer {
  public:
    explicit IscLexer(std::string_view t) : text_(t) {}
    // The next token; empty at the end. Punctuation ({ } ;) is a token of its own.
    bool next(std::string& token, bool& quoted) {
        token.clear();
        quoted = false;
        for (;;) {
            while (i_ < text_.size() && space(text_[i_])) ++i_;
            if (i_ < text_.size() && text_[i_] == '#') {
                while (i_ < text_.size() && text_[i_] != '\n') ++i_;
                continue;
            }
            break;
        }
        if (i_ >= text_.size()) return false;
        const char c = text_[i_];
        if (c == '{' || c == '}' || c == ';') {
            token = c;
            ++i_;
            return true;
        }
        if (c == '"') {
            quoted = true;
            ++i_;
            while (i_ < text_.size() && text_[i_] != '"') {
                if (text_[i_] == '\\' && i_ + 1 < text_.size()) ++i_;
                if (token.size() < 4 * k_lease_name_max) token += text_[i_];
                ++i_;
            }
            ++i_;
            return true;
        }
        while (i_ < text_.size() && !space(text_[i_]) && text_[i_] != '{' && text_[i_] != '}' &&
               text_[i_] != ';' && text_[i_] != '"') {
            if (token.size() < 4 * k_lease_name_max) token += text_[i_];
            ++i_;
        }
        return true;
    }

  private:
    std::string_view text_;
    std::size_t i_ = 0;
};

void parse_isc(std::string_view text, std::vector<Lease>& out) {
    // The file is a log: a later block of an address replaces the earlier one.
    std::map<std::pair<Family, Addr>, std::string> current;
    IscLexer lex(text);
    std::string tok, addr, name, state;
    bool quoted = false;
    int depth = 0;
    bool in_lease = false;
    std::vector<std::string> statement;  // the words of the statement being read
    while (lex.next(tok, quoted)) {
        if (!quoted && tok == "{") {
            if (depth == 0 && statement.size() == 2 && statement[0] == "lease") {
                in_lease = true;
                addr = statement[1];
                name.clear();
                state.clear();
            }
            ++depth;
            statement.clear();
        } else if (!quoted && tok == "}") {
            if (depth > 0) --depth;
            if (depth == 0 && in_lease) {
                in_lease = false;
                const bool ended = state == "free" || state == "expired" || state == "released" ||
                                   state == "abandoned" || state == "backup";
                // A later block of the address decides: an ended one takes its name away.
                if (auto a = parse_addr(addr)) {
                    std::string n = clean_name(name);
                    if (ended || n.empty())
                        current.erase({a->second, a->first});
                    else
                        current[{a->second, a->first}] = std::move(n);
                }
            }
            statement.clear();
        } else if (!quoted && tok == ";") {
            if (in_lease && depth == 1 && statement.size() >= 2) {
                if (statement[0] == "client-hostname") name = statement[1];
                if (statement[0] == "binding" && statement.size() >= 3 && statement[1] == "state")
                    state = statement[2];
            }
            statement.clear();
        } else if (statement.size() < 8) {
            statement.push_back(tok);
        }
    }
    for (auto& [key, kept] : current) out.push_back({key.first, key.second, std::move(kept)});
}

bool looks_isc(std::string_view text) {
    for (std::size_t at = text.find("lease "); at != std::string_view::npos;
         at = text.find("lease ", at + 1))
        if ((at == 0 || space(text[at - 1])) && text.find('{', at) != std::string_view::npos)
            return true;
    return false;
}

bool looks_networkd(std::string_view text) {
    return text.starts_with("# This is private data") || text.starts_with("ADDRESS=") ||
           text.find("\nADDRESS=") != std::string_view::npos;
}

// The whole file, or nothing when it is missing, unreadable, not regular or too big.
bool read_small(int dirfd, const std::string& path, std::string& text, struct stat& st) {
    const int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return false;
    UniqueFd owned(fd);
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::size_t>(st.st_size) > k_max_file)
        return false;
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    return true;
}

}  // namespace

std::vector<Lease> parse_leases(std::string_view text) {
    std::vector<Lease> out;
    if (looks_isc(text))
        parse_isc(text, out);
    else if (looks_networkd(text))
        parse_networkd(text, out);
    else
        parse_dnsmasq(text, out);
    return out;
}

std::vector<std::string> default_lease_paths() {
    return {"/var/lib/misc/dnsmasq.leases", "/var/lib/dnsmasq/dnsmasq.leases",
            "/var/lib/dhcp/dhcpd.leases", "/var/lib/dhcpd/dhcpd.leases",
            "/run/systemd/netif/leases"};
}

bool LeaseBook::refresh() {
    // Each path a file, or a directory whose regular files are each a leases file (networkd).
    std::vector<std::string> files;
    for (const auto& p : paths_) {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) continue;
        if (!S_ISDIR(st.st_mode)) {
            files.push_back(p);
            continue;
        }
        CPtr<DIR, closedir> dir(::opendir(p.c_str()));
        if (!dir) continue;
        std::size_t n = 0;
        while (const dirent* e = ::readdir(dir.get())) {
            if (e->d_name[0] == '.') continue;
            if (++n > 1024) break;  // bounded
            files.push_back(p + "/" + e->d_name);
        }
    }
    bool changed = false;
    std::set<std::string> present(files.begin(), files.end());
    for (auto it = files_.begin(); it != files_.end();) {
        if (!present.contains(it->first)) {
            it = files_.erase(it);
            changed = true;
        } else {
            ++it;
        }
    }
    for (const auto& f : files) {
        struct stat st {};
        if (::stat(f.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        Seen now;
        now.dev = st.st_dev;
        now.ino = st.st_ino;
        now.size = static_cast<std::uint64_t>(st.st_size);
        now.mtime_ns =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        auto old = files_.find(f);
        if (old != files_.end() && old->second.dev == now.dev && old->second.ino == now.ino &&
            old->second.size == now.size && old->second.mtime_ns == now.mtime_ns)
            continue;
        std::string text;
        struct stat read_st {};
        if (!read_small(AT_FDCWD, f, text, read_st)) continue;
        now.leases = parse_leases(text);
        if (old == files_.end() || old->second.leases != now.leases) changed = true;
        files_[f] = std::move(now);
    }
    if (changed) {
        names_.clear();
        for (const auto& [path, seen] : files_)
            for (const auto& l : seen.leases) names_[{l.family, l.addr}] = l.name;
    }
    return changed;
}

std::string_view LeaseBook::name(Family family, const Addr& addr) const {
    auto it = names_.find({family, addr});
    return it == names_.end() ? std::string_view{} : std::string_view(it->second);
}

}  // namespace flowtop::enrich
