#pragma once
// The flow log: one JSON line per ended flow, appended by a thread of its own. The writer's hook
// only copies final rows into a bounded queue; a slow or full disk costs lines (counted and
// reported), never collection. Size-based rotation keeps COUNT old files (FILE.1 newest);
// reopen() (SIGHUP) starts a new file after an outside tool moved the old one (logrotate).
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/export/bounded_queue.hpp"
#include "flowtop/export/ended_flows.hpp"
#include "flowtop/table/snapshot.hpp"
#include "flowtop/table/tick.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop::exporters {

struct FlowLogConfig {
    std::string path;
    std::uint64_t rotate_size = 0;  // bytes; 0: no rotation
    unsigned rotate_count = 5;      // rotated files kept
    std::size_t queue_capacity = 1 << 16;
};

// One line for a flow (without the newline). `frame` carries the strings and the time the
// line is written at (its stats.time_ns is the flow's end).
using FlowLineFormat =
    std::function<std::string(const table::Snapshot& frame, const table::FlowRow& row)>;

struct FlowLogCounters {
    std::atomic<std::uint64_t> lines{0};
    std::atomic<std::uint64_t> dropped{0};  // queue full or not written (disk full, I/O error)
    std::atomic<std::uint64_t> write_errors{0};
    std::atomic<std::uint64_t> rotations{0};
};

class FlowLog final : public table::TickHook {
  public:
    // Opens the file for appending (throws Error naming it). `hub` gives the string pool.
    FlowLog(const table::SnapshotHub& hub, FlowLogConfig config, FlowLineFormat format);
    ~FlowLog() override;
    void start();

    void on_tick(table::TickContext& tick) override;
    // Any thread (signal-driven): the log thread closes and reopens the file by its name.
    void reopen() noexcept { reopen_.store(true); }
    // Any thread (SIGHUP's config reload): the log thread moves to `path` and its rotation
    // settings before its next write. A new path that cannot be opened is a note, and the log
    // keeps writing where it did.
    void reconfigure(std::string path, std::uint64_t rotate_size, unsigned rotate_count);
    const FlowLogCounters& counters() const noexcept { return counters_; }
    // Problems for the user ("flowtop: warning: ..."), each reported once until it clears.
    std::vector<std::string> take_notes();
    // Where notes go as they happen instead (stderr in main); before start().
    void set_note_sink(std::function<void(const std::string&)> sink) { on_note_ = std::move(sink); }

  private:
    void run(std::stop_token stop);
    void write_lines(std::vector<table::FlowRow>& rows);
    bool open_file();
    void take_reconfiguration();
    void rotate();
    void note(std::string text);

    const table::SnapshotHub& hub_;
    FlowLogConfig config_;
    FlowLineFormat format_;
    UniqueFd fd_;
    std::uint64_t size_ = 0;
    bool failing_ = false;
    bool partial_line_ = false;  // the last failed write may have left half a line
    std::atomic<bool> reopen_{false};
    std::mutex pending_mutex_;
    std::optional<FlowLogConfig> pending_;
    BoundedQueue<table::FlowRow> queue_;
    EndedFlows ended_;
    std::vector<table::FlowRow> final_rows_;
    FlowLogCounters counters_;
    std::mutex notes_mutex_;
    std::vector<std::string> notes_;
    std::function<void(const std::string&)> on_note_;
    std::jthread thread_;
};

// "10M,5" -> {10 MiB, 5}; suffixes k, M, G (powers of 1024). Throws UsageError.
std::pair<std::uint64_t, unsigned> parse_rotate(const std::string& text);

}  // namespace flowtop::exporters
