#include "flowtop/ui/config_file.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flowtop/detect/config.hpp"
#include "flowtop/export/flow_log.hpp"
#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/view_model.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"
#include "flowtop/util/local_addresses.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::ui {
namespace {

std::vector<std::string_view> split_list(std::string_view v) {
    std::vector<std::string_view> items;
    while (!v.empty()) {
        auto comma = v.find(',');
        auto item = trim_blanks(v.substr(0, comma));
        if (!item.empty()) items.push_back(item);
        v.remove_prefix(comma == std::string_view::npos ? v.size() : comma + 1);
    }
    return items;
}

// A setter returns an error message ("" when the value was taken).
using Setter = std::string (*)(Options&, std::string_view);
using Getter = std::string (*)(const Options&);

std::string set_bool(bool& field, std::string_view v, bool invert = false) {
    for (auto yes : {"yes", "on", "true", "1"})
        if (v == yes) {
            field = !invert;
            return "";
        }
    for (auto no : {"no", "off", "false", "0"})
        if (v == no) {
            field = invert;
            return "";
        }
    return "expected yes or no, got '" + std::string(v) + "'";
}

std::string bool_text(bool b) { return b ? "yes" : "no"; }

struct ProtoName {
    const char* name;
    std::uint8_t number;
};
constexpr ProtoName k_protos[] = {
    {"tcp", IPPROTO_TCP},   {"udp", IPPROTO_UDP},     {"dccp", IPPROTO_DCCP},
    {"icmp", IPPROTO_ICMP}, {"icmp", IPPROTO_ICMPV6}, {"sctp", IPPROTO_SCTP},
};

std::string set_protos(std::vector<std::uint8_t>& field, std::string_view v) {
    std::vector<std::uint8_t> out;
    for (auto item : split_list(v)) {
        bool known = false;
        for (const auto& p : k_protos)
            if (item == p.name) {
                known = true;
                if (std::find(out.begin(), out.end(), p.number) == out.end())
                    out.push_back(p.number);
            }
        if (!known)
            return "unknown protocol '" + std::string(item) + "': use tcp, udp, dccp, icmp, sctp";
    }
    field = std::move(out);
    return "";
}

std::string protos_text(const std::vector<std::uint8_t>& field) {
    std::string out;
    for (const auto& p : k_protos) {
        if (p.number == IPPROTO_ICMPV6) continue;  // listed once, as icmp
        if (std::find(field.begin(), field.end(), p.number) != field.end())
            out += std::string(out.empty() ? "" : ", ") + p.name;
    }
    return out;
}

std::string set_interval(std::chrono::milliseconds& field, std::string_view v) {
    double seconds = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
    if (ec != std::errc{} || end != v.data() + v.size() || !std::isfinite(seconds) ||
        seconds < 0.1 || seconds > 3600)
        return "invalid interval '" + std::string(v) + "': give seconds between 0.1 and 3600";
    field = std::chrono::milliseconds(static_cast<long>(std::lround(seconds * 1000)));
    return "";
}

std::string interval_text(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(ms.count()) / 1000.0);
    return buf;
}

// Columns of the flows list a user may hide (the destination and the rates always show; the
// source has its own key, show_source).
constexpr std::string_view k_hideable[] = {
    "proto", "state", "port",  "process", "cc",
    "bytes", "age",   "netns", "nat"};  // shown only when a shown flow is NATed

struct Key {
    const char* name;
    Setter set;
    Getter get;
};

// Every setting a user makes by flag or key. A new setting (e.g. a detector's alert
// threshold) is one line here plus its field in Options.
const Key k_keys[] = {
    {"interval", [](Options& o, std::string_view v) { return set_interval(o.interval, v); },
     [](const Options& o) { return interval_text(o.interval); }},
    {"show_source", [](Options& o, std::string_view v) { return set_bool(o.show_source, v); },
     [](const Options& o) { return bool_text(o.show_source); }},
    {"sort",
     [](Options& o, std::string_view v) -> std::string {
         if (!parse_sort_key(v)) return "unknown sort column '" + std::string(v) + "'";
         o.sort = v;
         return "";
     },
     [](const Options& o) { return o.sort.empty() ? std::string("rate") : o.sort; }},
    {"hide_columns",
     [](Options& o, std::string_view v) -> std::string {
         std::vector<std::string> out;
         for (auto item : split_list(v)) {
             if (std::find(std::begin(k_hideable), std::end(k_hideable), item) ==
                 std::end(k_hideable))
                 return "unknown column '" + std::string(item) +
                        "': use proto, state, port, process, cc, bytes, age, netns, nat";
             out.emplace_back(item);
         }
         o.hidden_columns = std::move(out);
         return "";
     },
     [](const Options& o) {
         std::string out;
         for (const auto& c : o.hidden_columns) out += (out.empty() ? "" : ", ") + c;
         return out;
     }},
    {"reverse", [](Options& o, std::string_view v) { return set_bool(o.reverse, v); },
     [](const Options& o) { return bool_text(o.reverse); }},
    {"rate_window",
     [](Options& o, std::string_view v) -> std::string {
         if (!parse_rate_window(v))
             return "unknown rate window '" + std::string(v) + "': use tick, 2s, 10s or 40s";
         o.rate_window = v;
         return "";
     },
     [](const Options& o) { return o.rate_window; }},
    {"units",
     [](Options& o, std::string_view v) -> std::string {
         if (v != "bytes" && v != "bits")
             return "unknown units '" + std::string(v) + "': use bytes or bits";
         o.bits = v == "bits";
         return "";
     },
     [](const Options& o) { return std::string(o.bits ? "bits" : "bytes"); }},
    {"totals", [](Options& o, std::string_view v) { return set_bool(o.totals, v); },
     [](const Options& o) { return bool_text(o.totals); }},
    {"bars", [](Options& o, std::string_view v) { return set_bool(o.bars, v); },
     [](const Options& o) { return bool_text(o.bars); }},
    {"log_bars", [](Options& o, std::string_view v) { return set_bool(o.log_bars, v); },
     [](const Options& o) { return bool_text(o.log_bars); }},
    {"active_only", [](Options& o, std::string_view v) { return set_bool(o.active_only, v); },
     [](const Options& o) { return bool_text(o.active_only); }},
    {"filter",
     [](Options& o, std::string_view v) -> std::string {
         FilterError error;
         FilterExpr::parse(std::string(v), &error);
         if (!error.message.empty())
             return "filter: " + error.message + " (at column " + std::to_string(error.column + 1) +
                    ")";
         o.filter = v;
         return "";
     },
     [](const Options& o) { return o.filter; }},
    {"family",
     [](Options& o, std::string_view v) -> std::string {
         if (v != "all" && v != "ipv4" && v != "ipv6")
             return "unknown family '" + std::string(v) + "': use all, ipv4 or ipv6";
         o.only_ipv4 = v == "ipv4";
         o.only_ipv6 = v == "ipv6";
         return "";
     },
     [](const Options& o) {
         return std::string(o.only_ipv4 ? "ipv4" : o.only_ipv6 ? "ipv6" : "all");
     }},
    {"protocols", [](Options& o, std::string_view v) { return set_protos(o.protocols, v); },
     [](const Options& o) { return protos_text(o.protocols); }},
    {"hide_protocols",
     [](Options& o, std::string_view v) { return set_protos(o.hidden_protocols, v); },
     [](const Options& o) { return protos_text(o.hidden_protocols); }},
    {"dns", [](Options& o, std::string_view v) { return set_bool(o.no_dns, v, true); },
     [](const Options& o) { return bool_text(!o.no_dns); }},
    {"service_names",
     [](Options& o, std::string_view v) { return set_bool(o.port_numbers, v, true); },
     [](const Options& o) { return bool_text(!o.port_numbers); }},
    {"processes", [](Options& o, std::string_view v) { return set_bool(o.no_proc, v, true); },
     [](const Options& o) { return bool_text(!o.no_proc); }},
    {"geoip", [](Options& o, std::string_view v) { return set_bool(o.no_geoip, v, true); },
     [](const Options& o) { return bool_text(!o.no_geoip); }},
    {"geoip_db",
     [](Options& o, std::string_view v) -> std::string {
         o.geoip_dbs.clear();
         for (auto item : split_list(v)) o.geoip_dbs.emplace_back(item);
         return "";
     },
     [](const Options& o) {
         std::string out;
         for (const auto& d : o.geoip_dbs) out += (out.empty() ? "" : ", ") + d;
         return out;
     }},
    {"lan",
     [](Options& o, std::string_view v) -> std::string {
         o.lans.clear();
         for (auto item : split_list(v)) {
             if (!parse_network(item)) return "not a network: " + quote_input(item);
             o.lans.emplace_back(item);
         }
         return "";
     },
     [](const Options& o) {
         std::string out;
         for (const auto& n : o.lans) out += (out.empty() ? "" : ", ") + n;
         return out;
     }},
    {"leases",
     [](Options& o, std::string_view v) -> std::string {
         // Empty: the usual places (what a saved file says when none were named).
         o.lease_files.clear();
         for (auto item : split_list(v)) o.lease_files.emplace_back(item);
         o.leases_given = !o.lease_files.empty();
         return "";
     },
     [](const Options& o) {
         std::string out;
         for (const auto& f : o.lease_files) out += (out.empty() ? "" : ", ") + f;
         return out;
     }},
    {"conf_dir",
     [](Options& o, std::string_view v) -> std::string {
         o.conf_dir = v;
         return "";
     },
     [](const Options& o) { return o.conf_dir; }},
    {"color", [](Options& o, std::string_view v) { return set_bool(o.color, v); },
     [](const Options& o) { return bool_text(o.color); }},
};

// Keys of the service (--daemon) that the live view's save key never writes: the detectors'
// settings (detect.NAME, the names of --detect) and the flow log. A SIGHUP re-reads them.
// Returns false when `name` is none of them; else sets *error ("" when taken).
bool apply_service_key(std::string_view name, std::string_view value, Options& o,
                       std::string* error) {
    constexpr std::string_view k_detect = "detect.";
    if (name.starts_with(k_detect)) {
        const std::string assignment =
            std::string(name.substr(k_detect.size())) + "=" + std::string(value);
        try {
            detect::DetectConfig check;
            detect::apply_setting(check, assignment);
        } catch (const Error& e) {
            // "--detect scan.ports: invalid value ..." said in the file's terms.
            std::string message = e.what();
            if (message.starts_with("--detect")) {
                const auto colon = message.find(": ");
                if (colon != std::string::npos) message.erase(0, colon + 2);
            }
            *error = message;
            return true;
        }
        o.detect_settings.push_back(assignment);
        return true;
    }
    if (name == "log") {
        if (value.empty()) {
            *error = "give a file name";
            return true;
        }
        o.log_file = value;
        o.log_from_config = true;
        return true;
    }
    if (name == "log_rotate") {
        try {
            const auto [size, count] = exporters::parse_rotate(std::string(value));
            o.log_rotate_size = size;
            o.log_rotate_count = count;
            o.log_rotate_from_config = true;
        } catch (const Error& e) {
            std::string message = e.what();
            if (message.starts_with("--log-rotate ")) message.erase(0, 13);
            *error = message;
        }
        return true;
    }
    return false;
}

const Key* find_key(std::string_view name) {
    for (const auto& k : k_keys)
        if (name == k.name) return &k;
    return nullptr;
}

// A line's key, or "" for blank lines and comments. Sets *value when there is one.
std::string_view line_key(std::string_view line, std::string_view* value, bool* malformed) {
    line = trim_blanks(line);
    *malformed = false;
    if (line.empty() || line.front() == '#') return {};
    auto eq = line.find('=');
    if (eq == std::string_view::npos) {
        *malformed = true;
        return {};
    }
    *value = trim_blanks(line.substr(eq + 1));
    return trim_blanks(line.substr(0, eq));
}

std::string read_file(const std::string& path, bool* missing) {
    std::ifstream in(path, std::ios::binary);
    *missing = false;
    if (!in) {
        const int err = errno;
        if (err == ENOENT) {
            *missing = true;
            return {};
        }
        throw Error(errno_message("cannot read " + path, err));
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Under sudo, the invoking user (whose file it is); else none.
const passwd* sudo_user() {
    if (geteuid() != 0) return nullptr;
    const char* name = std::getenv("SUDO_USER");
    if (!name || !*name || std::string_view(name) == "root") return nullptr;
    return getpwnam(name);
}

}  // namespace

std::string user_config_path() {
    if (const passwd* pw = sudo_user(); pw && pw->pw_dir && *pw->pw_dir)
        return std::string(pw->pw_dir) + "/.config/flowtop/flowtoprc";
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg == '/')
        return std::string(xdg) + "/flowtop/flowtoprc";
    const char* home = std::getenv("HOME");
    if (!home || !*home) {
        const passwd* pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : nullptr;
    }
    if (!home || !*home) return {};
    return std::string(home) + "/.config/flowtop/flowtoprc";
}

void apply_config_text(std::string_view text, const std::string& file, Options& o,
                       std::vector<std::string>& warnings) {
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        std::string_view value;
        bool malformed = false;
        auto name = line_key(line, &value, &malformed);
        auto where = file + ":" + std::to_string(line_no) + ": ";
        if (malformed) {
            warnings.push_back(where + "expected \"key = value\", got \"" +
                               std::string(trim_blanks(line)) + "\"");
            continue;
        }
        if (name.empty()) continue;
        if (std::string error; apply_service_key(name, value, o, &error)) {
            if (!error.empty()) warnings.push_back(where + quote_input(name) + ": " + error);
            continue;
        }
        const Key* key = find_key(name);
        if (!key) {
            std::string known;
            for (const auto& k : k_keys) known += std::string(known.empty() ? "" : ", ") + k.name;
            known += ", log, log_rotate, detect.NAME (flowtop --detect help)";
            warnings.push_back(where + "unknown key \"" + std::string(name) +
                               "\" (known: " + known + ")");
            continue;
        }
        if (auto error = key->set(o, value); !error.empty())
            warnings.push_back(where + std::string(name) + ": " + error);
    }
}

bool apply_config_file(const std::string& path, Options& o, std::vector<std::string>& warnings) {
    bool missing = false;
    std::string text;
    try {
        text = read_file(path, &missing);
    } catch (const Error& e) {
        warnings.emplace_back(e.what());
        return false;
    }
    if (missing) return false;
    apply_config_text(text, path, o, warnings);
    return true;
}

std::string config_text(const Options& o) {
    std::string out;
    for (const auto& k : k_keys) out += std::string(k.name) + " = " + k.get(o) + "\n";
    return out;
}

void save_config(const std::string& path, const Options& o) {
    if (path.empty()) throw Error("no home directory to save the settings in");
    namespace fs = std::filesystem;
    bool missing = false;
    const std::string old = read_file(path, &missing);
    const passwd* owner = sudo_user();

    // Known keys get their current value where they stand; everything else stays.
    std::string out;
    std::vector<bool> written(std::size(k_keys), false);
    if (missing)
        out =
            "# flowtop settings (flowtop(8), FILES). Written by the live view's W / F2 key,\n"
            "# which keeps comments and unknown lines and updates the values in place.\n";
    std::string_view rest = old;
    while (!rest.empty()) {
        auto nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
        std::string_view value;
        bool malformed = false;
        auto name = line_key(line, &value, &malformed);
        const Key* key = name.empty() ? nullptr : find_key(name);
        if (!key) {
            out += std::string(line) + "\n";
            continue;
        }
        written[static_cast<std::size_t>(key - k_keys)] = true;
        out += std::string(key->name) + " = " + key->get(o) + "\n";
    }
    for (std::size_t i = 0; i < std::size(k_keys); ++i)
        if (!written[i]) out += std::string(k_keys[i].name) + " = " + k_keys[i].get(o) + "\n";

    const fs::path target(path);
    std::error_code ec;
    if (!fs::exists(target.parent_path(), ec)) {
        fs::create_directories(target.parent_path(), ec);
        if (ec) throw Error("cannot make " + target.parent_path().string() + ": " + ec.message());
        if (owner) {
            // ~/.config and ~/.config/flowtop belong to the user, not to root.
            for (auto dir = target.parent_path(); dir.string().size() > std::strlen(owner->pw_dir);
                 dir = dir.parent_path())
                if (chown(dir.c_str(), owner->pw_uid, owner->pw_gid) != 0) break;
        }
    }
    // The same directory, so rename() replaces the file atomically: a reader sees the old
    // file or the new one, never half of one.
    std::string tmp = path + ".XXXXXX";
    UniqueFd fd(mkstemp(tmp.data()));
    if (!fd) throw Error(errno_message("cannot write " + path, errno));
    auto fail = [&](const char* what) {
        const int err = errno;
        unlink(tmp.c_str());
        throw Error(errno_message(std::string(what) + " " + path, err));
    };
    for (std::size_t done = 0; done < out.size();) {
        ssize_t n = write(fd.get(), out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("cannot write");
        done += static_cast<std::size_t>(n);
    }
    if (fchmod(fd.get(), 0644) != 0) fail("cannot set the mode of");
    if (owner && fchown(fd.get(), owner->pw_uid, owner->pw_gid) != 0) fail("cannot hand over");
    if (fsync(fd.get()) != 0) fail("cannot sync");
    fd.reset();
    if (rename(tmp.c_str(), path.c_str()) != 0) fail("cannot replace");
}

Options load_options(int argc, char* const argv[], const std::vector<std::string>& files,
                     std::vector<std::string>& warnings) {
    Options base;
    for (const auto& f : files) apply_config_file(f, base, warnings);
    Options o = parse_options(argc, argv, std::move(base));
    // A log path in a flowtoprc is the service's: an interactive or batch run that reads the
    // same system file must not append to the service's log.
    if (o.log_from_config && !o.daemon) {
        o.log_file.clear();
        o.log_from_config = false;
    }
    return o;
}

Options load_options(int argc, char* const argv[], std::vector<std::string>& warnings) {
    // A first pass only to learn --config / --no-config (and to fail early on bad flags).
    const Options cli = parse_options(argc, argv);
    std::vector<std::string> files;
    if (!cli.config_file.empty()) {
        files.push_back(cli.config_file);
        bool missing = false;
        try {
            read_file(cli.config_file, &missing);
        } catch (const Error&) {
        }
        if (missing) warnings.push_back(cli.config_file + ": no such file (W / F2 makes it)");
    } else if (!cli.no_config) {
        files.emplace_back(k_system_config);
        if (auto user = user_config_path(); !user.empty()) files.push_back(std::move(user));
    }
    return load_options(argc, argv, files, warnings);
}

detect::DetectConfig detect_config(const Options& o) {
    detect::DetectConfig c;
    for (const auto& a : o.detect_settings) detect::apply_setting(c, a);
    return c;
}

ConfigReload compare_for_reload(const Options& running, const Options& next) {
    ConfigReload r;
    const auto old_detect = detect_config(running);
    const auto new_detect = detect_config(next);
    for (const auto& s : detect::settings()) {
        const auto was = s.get(old_detect), now = s.get(new_detect);
        if (was == now) continue;
        const std::string change =
            "detect." + std::string(s.name) + " = " + now + " (was " + was + ")";
        if (running.no_detect) {
            r.restart.push_back(change + ": detectors are off (--no-detect)");
            continue;
        }
        r.detect = true;
        r.changes.push_back(change);
    }
    const auto rotate_text = [](const Options& o) {
        return o.log_rotate_size
                   ? std::to_string(o.log_rotate_size) + "," + std::to_string(o.log_rotate_count)
                   : std::string("off");
    };
    if (running.log_file != next.log_file) {
        const std::string change = "log = " + (next.log_file.empty() ? "(none)" : next.log_file) +
                                   " (was " +
                                   (running.log_file.empty() ? "(none)" : running.log_file) + ")";
        // The log's thread and hook exist from the start or not at all.
        if (running.log_file.empty() || next.log_file.empty()) {
            r.restart.push_back(change + ": starting or stopping the log needs a restart");
        } else {
            r.log = true;
            r.changes.push_back(change);
        }
    }
    if (rotate_text(running) != rotate_text(next) && !running.log_file.empty() &&
        !next.log_file.empty()) {
        r.log = true;
        r.changes.push_back("log_rotate = " + rotate_text(next) + " (was " + rotate_text(running) +
                            ")");
    }
    // What the service reads once, at start.
    constexpr std::string_view k_daemon_keys[] = {"interval", "dns",      "processes",
                                                  "geoip",    "geoip_db", "conf_dir"};
    for (const auto& k : k_keys) {
        const auto was = k.get(running), now = k.get(next);
        if (was == now) continue;
        const bool used = std::find(std::begin(k_daemon_keys), std::end(k_daemon_keys),
                                    std::string_view(k.name)) != std::end(k_daemon_keys);
        r.restart.push_back(std::string(k.name) + " = " + now + " (was " + was + "): " +
                            (used ? "needs a restart" : "a live view setting, unused by --daemon"));
    }
    return r;
}

std::string save_path(const Options& o) {
    return o.config_file.empty() ? user_config_path() : o.config_file;
}

}  // namespace flowtop::ui
