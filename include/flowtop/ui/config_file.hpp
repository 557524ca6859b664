#pragma once
// flowtoprc: `key = value` lines applied onto Options. Read from /etc/flowtop/flowtoprc, then
// the user's file, then the command line, each overriding the one before (htop's habit: the
// live view's W / F2 key writes the current settings back to the user's file).
#include <string>
#include <string_view>
#include <vector>

#include "flowtop/detect/config.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

inline constexpr const char* k_system_config = "/etc/flowtop/flowtoprc";

// The user's file: $XDG_CONFIG_HOME/flowtop/flowtoprc, else ~/.config/flowtop/flowtoprc. Run
// as root through sudo, the invoking user's (SUDO_USER's home), as htop does. Empty when no
// home can be found.
std::string user_config_path();

// Applies the lines of `text` onto o. A malformed line, an unknown key or a bad value adds
// "file:line: message" to warnings and the rest still loads. '#' starts a comment only at
// the start of a line, so filter values may hold one.
void apply_config_text(std::string_view text, const std::string& file, Options& o,
                       std::vector<std::string>& warnings);
// Returns false (and adds nothing) when the file does not exist; an unreadable one warns.
bool apply_config_file(const std::string& path, Options& o, std::vector<std::string>& warnings);

// Every setting the config file knows, as `key = value` lines (what the save key writes).
std::string config_text(const Options& o);

// Writes o's settings to path atomically (a temporary file in the same directory, fsync,
// rename): lines of known keys get the current values in place, comments, blank lines and
// unknown lines stay as the user wrote them, keys the file lacked are appended. Makes the
// directory; under sudo hands the file to the invoking user. Throws Error.
void save_config(const std::string& path, const Options& o);

// Options for a run: defaults, then the system and user files (or --config FILE alone, or
// none with --no-config), then argv. Config problems are added to warnings; bad flags throw
// UsageError as parse_options does.
Options load_options(int argc, char* const argv[], std::vector<std::string>& warnings);
// The same with explicit files (tests).
Options load_options(int argc, char* const argv[], const std::vector<std::string>& files,
                     std::vector<std::string>& warnings);

// The detectors' settings of a run: the defaults, then each detect.NAME / --detect in order.
detect::DetectConfig detect_config(const Options& o);

// What a SIGHUP in --daemon mode changes: the options in force against the ones the config
// files and the same command line give now. Reloaded at run time: every detector setting
// (detect.NAME) and the flow log's path and rotation (log, log_rotate) when a log was open at
// start. Everything else takes effect at the next start (said per key).
struct ConfigReload {
    bool detect = false;               // a detector setting changed: reconfigure with detect_config
    bool log = false;                  // the log's path or rotation changed
    std::vector<std::string> changes;  // "detect.scan.ports = 5 (was 100)"
    std::vector<std::string> restart;  // "interval (needs a restart)"
};
ConfigReload compare_for_reload(const Options& running, const Options& next);

// The file the save key writes: --config FILE, else user_config_path().
std::string save_path(const Options& o);

}  // namespace flowtop::ui
