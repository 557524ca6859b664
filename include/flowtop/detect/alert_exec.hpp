#pragma once
// --alert-exec: runs a command once per new alert with the alert's JSON line on its stdin.
// Its own thread reads the alert log from the frames (never the writer), keeps a bounded
// queue, spaces the runs (a rate limit), kills a command that outlives its timeout and counts
// what failed or was dropped. Collection never waits for it.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/table/snapshot.hpp"

namespace flowtop::detect {

struct AlertExecConfig {
    std::string command;
    bool shell = false;        // run through /bin/sh -c (else: words split at spaces)
    unsigned per_minute = 60;  // runs at most this often (evenly spaced)
    std::size_t queue = 64;    // alerts waiting to run; more are dropped (counted)
    std::chrono::milliseconds timeout{10000};  // then the command is killed (a failure)
    bool quiet = false;           // the command's stderr to /dev/null (the live view owns the tty)
    bool report_failures = true;  // a line on stderr per failure
};

struct AlertExecStats {
    std::uint64_t runs = 0;
    std::uint64_t failures = 0;  // could not start, non-zero exit, killed by signal or timeout
    std::uint64_t dropped = 0;   // queue full, or pushed out of the alert log before it ran
};

// The argv a command line runs as (no shell: split at blanks; shell: /bin/sh -c CMD).
std::vector<std::string> exec_argv(const std::string& command, bool shell);
// Throws flowtop::Error when the program (or the shell) is missing, not executable, or
// in or under a world-writable place: flowtop runs as root, so nobody else may swap it.
void check_exec_path(const std::string& command, bool shell);

class AlertExec {
  public:
    AlertExec(const table::SnapshotHub& hub, AlertExecConfig config);
    ~AlertExec();  // stops the thread (a running command gets its timeout, then is killed)
    AlertExec(const AlertExec&) = delete;
    AlertExec& operator=(const AlertExec&) = delete;
    AlertExecStats stats() const;

  private:
    void run(std::stop_token stop);
    bool run_one(const std::string& json, std::stop_token& stop);

    const table::SnapshotHub& hub_;
    AlertExecConfig config_;
    std::vector<std::string> argv_;
    std::atomic<std::uint64_t> runs_{0}, failures_{0}, dropped_{0};
    std::jthread thread_;
};

}  // namespace flowtop::detect
