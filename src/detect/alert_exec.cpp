#include "flowtop/detect/alert_exec.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>

#include "flowtop/detect/alert_format.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"
#include "flowtop/util/signals.hpp"

extern char** environ;

namespace flowtop::detect {

std::vector<std::string> exec_argv(const std::string& command, bool shell) {
    if (shell) return {"/bin/sh", "-c", command};
    std::vector<std::string> words;
    std::string word;
    for (char ch : command) {
        if (ch == ' ' || ch == '\t') {
            if (!word.empty()) words.push_back(std::move(word));
            word.clear();
        } else {
            word += ch;
        }
    }
    if (!word.empty()) words.push_back(std::move(word));
    return words;
}

namespace {

std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    std::size_t at = 0;
    while (at <= dirs.size()) {
        auto colon = dirs.find(':', at);
        if (colon == std::string::npos) colon = dirs.size();
        std::string dir = dirs.substr(at, colon - at);
        if (!dir.empty()) {
            std::string candidate = dir + "/" + name;
            if (access(candidate.c_str(), X_OK) == 0) return candidate;
        }
        at = colon + 1;
    }
    return {};
}

void check_not_world_writable(const std::string& given) {
    namespace fs = std::filesystem;
    // Both the path as given and where its links lead: either may be swapped by its owner.
    std::error_code ec;
    const fs::path real = fs::canonical(given, ec);
    if (ec) throw Error("--alert-exec: cannot run '" + given + "': " + ec.message());
    for (const fs::path& start : {fs::absolute(fs::path(given)), real}) {
        for (fs::path p = start; !p.empty(); p = p.parent_path()) {
            struct stat st {};
            if (lstat(p.c_str(), &st) == 0 && !S_ISLNK(st.st_mode) && (st.st_mode & S_IWOTH))
                throw Error("--alert-exec: refusing to run '" + given + "': " + p.string() +
                            " is world-writable");
            if (p == p.root_path()) break;
        }
    }
    struct stat st {};
    if (stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || access(real.c_str(), X_OK) != 0)
        throw Error("--alert-exec: '" + given + "' is not an executable file");
}

}  // namespace

void check_exec_path(const std::string& command, bool shell) {
    const auto argv = exec_argv(command, shell);
    if (argv.empty() || (shell && command.find_first_not_of(" \t") == std::string::npos))
        throw UsageError("--alert-exec needs a command");
    check_not_world_writable(argv[0]);
    if (shell) {
        // The shell runs whatever the line starts with: check that program too when it is one.
        const auto words = exec_argv(command, false);
        const std::string first = find_program(words.front());
        if (!first.empty() && std::filesystem::exists(first)) check_not_world_writable(first);
        return;
    }
    const std::string program = find_program(argv[0]);
    if (program.empty()) throw Error("--alert-exec: '" + argv[0] + "' not found in PATH");
    check_not_world_writable(program);
}

AlertExec::AlertExec(const table::SnapshotHub& hub, AlertExecConfig config)
    : hub_(hub), config_(std::move(config)), argv_(exec_argv(config_.command, config_.shell)) {
    if (!config_.shell) argv_[0] = find_program(argv_[0]);
    thread_ = signals::crash_safe_thread([this](std::stop_token stop) { run(stop); });
}

AlertExec::~AlertExec() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
}

AlertExecStats AlertExec::stats() const {
    return {runs_.load(), failures_.load(), dropped_.load()};
}

bool AlertExec::run_one(const std::string& json, std::stop_token& stop) {
    // A socket, not a pipe, for its stdin: send() with MSG_NOSIGNAL gets EPIPE instead of a
    // SIGPIPE when the command does not read its input.
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
    UniqueFd ours(sv[0]), theirs(sv[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, theirs.get(), STDIN_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    if (config_.quiet)
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    std::vector<char*> argv;
    for (auto& a : argv_) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    theirs.reset();
    if (rc != 0) return false;
    const std::string line = json + "\n";
    std::size_t sent = 0;
    while (sent < line.size()) {
        const ssize_t n = send(ours.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // it does not read: fine, as long as it exits well
        sent += static_cast<std::size_t>(n);
    }
    ours.reset();
    const auto deadline = std::chrono::steady_clock::now() + config_.timeout;
    int status = 0;
    for (;;) {
        const pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) break;
        if (done < 0 && errno != EINTR) return false;
        if (std::chrono::steady_clock::now() >= deadline || stop.stop_requested()) {
            kill(-pid, SIGKILL);  // its own process group: what it started goes too
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void AlertExec::run(std::stop_token stop) {
    std::deque<std::string> queue;
    std::uint64_t last_seq = 0;
    std::uint64_t last_id = 0;  // the newest alert id queued: only new alerts run
    const auto spacing = std::chrono::milliseconds(60000 / std::max(1u, config_.per_minute));
    auto next_run = std::chrono::steady_clock::now();
    std::uint64_t frame_seq = 0;
    while (!stop.stop_requested()) {
        auto snap = hub_.wait_newer(frame_seq, std::chrono::milliseconds(100));
        if (snap && snap->stats.seq > frame_seq) {
            frame_seq = snap->stats.seq;
            if (const auto& log = snap->alerts; log && log->seq > last_seq) {
                // Alerts raised and pushed out of the log before we looked.
                if (last_id && !log->alerts.empty() && log->alerts.front()->id > last_id + 1)
                    dropped_ += log->alerts.front()->id - last_id - 1;
                for (const auto& a : log->alerts) {
                    if (a->id <= last_id) continue;
                    last_id = a->id;
                    if (queue.size() >= config_.queue) {
                        ++dropped_;
                        continue;
                    }
                    queue.push_back(alert_json(*a, true));
                }
                last_seq = log->seq;
            }
        }
        if (queue.empty() || std::chrono::steady_clock::now() < next_run) {
            if (hub_.closed() && queue.empty()) break;
            continue;
        }
        const std::string json = std::move(queue.front());
        queue.pop_front();
        next_run = std::chrono::steady_clock::now() + spacing;
        ++runs_;
        if (!run_one(json, stop)) {
            ++failures_;
            if (config_.report_failures)
                std::fprintf(stderr,
                             "flowtop: warning: --alert-exec command failed (%llu of %llu)\n",
                             static_cast<unsigned long long>(failures_.load()),
                             static_cast<unsigned long long>(runs_.load()));
        }
    }
}

}  // namespace flowtop::detect
