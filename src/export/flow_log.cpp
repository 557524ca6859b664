#include "flowtop/export/flow_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "flowtop/util/error.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::exporters {

std::pair<std::uint64_t, unsigned> parse_rotate(const std::string& text) {
    const auto bad = [&] {
        return UsageError("--log-rotate '" + quote_input(text) +
                          "': use SIZE,COUNT, e.g. 100M,5 (SIZE in bytes or with k, M, G)");
    };
    const auto comma = text.find(',');
    if (comma == std::string::npos) throw bad();
    const std::string size_text = text.substr(0, comma);
    const std::string count_text = text.substr(comma + 1);
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(size_text.c_str(), &end, 10);
    if (errno || end == size_text.c_str() || n == 0) throw bad();
    std::uint64_t mult = 1;
    const std::string suffix = end;
    if (suffix == "k" || suffix == "K")
        mult = 1024;
    else if (suffix == "M")
        mult = std::uint64_t{1024} * 1024;
    else if (suffix == "G")
        mult = 1024ull * 1024 * 1024;
    else if (!suffix.empty())
        throw bad();
    end = nullptr;
    const unsigned long count = std::strtoul(count_text.c_str(), &end, 10);
    if (count_text.empty() || *end || count < 1 || count > 1000) throw bad();
    return {n * mult, static_cast<unsigned>(count)};
}

FlowLog::FlowLog(const table::SnapshotHub& hub, FlowLogConfig config, FlowLineFormat format)
    : hub_(hub),
      config_(std::move(config)),
      format_(std::move(format)),
      queue_(config_.queue_capacity) {
    if (!open_file())
        throw Error(errno_message("--log: cannot open '" + config_.path + "'", errno));
}

FlowLog::~FlowLog() {
    if (thread_.joinable()) {
        thread_.request_stop();
        thread_.join();
    }
}

bool FlowLog::open_file() {
    UniqueFd fd(open(config_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) return false;
    struct stat st {};
    size_ = fstat(fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    fd_ = std::move(fd);
    partial_line_ = false;
    return true;
}

void FlowLog::reconfigure(std::string path, std::uint64_t rotate_size, unsigned rotate_count) {
    std::lock_guard lock(pending_mutex_);
    // Not config_: that is the log thread's. queue_capacity stays as made.
    FlowLogConfig next;
    next.path = std::move(path);
    next.rotate_size = rotate_size;
    next.rotate_count = rotate_count;
    pending_ = std::move(next);
}

void FlowLog::take_reconfiguration() {
    std::optional<FlowLogConfig> next;
    {
        std::lock_guard lock(pending_mutex_);
        next.swap(pending_);
    }
    if (!next) return;
    if (next->path != config_.path) {
        UniqueFd fd(open(next->path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
        if (!fd) {
            note(errno_message(
                "flow log: cannot open '" + next->path + "' (still writing '" + config_.path + "')",
                errno));
            return;
        }
        struct stat st {};
        size_ = fstat(fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
        fd_ = std::move(fd);
        partial_line_ = false;
        failing_ = false;
    }
    config_.path = std::move(next->path);
    config_.rotate_size = next->rotate_size;
    config_.rotate_count = next->rotate_count;
}

void FlowLog::start() {
    thread_ = signals::crash_safe_thread([this](std::stop_token stop) { run(stop); });
}

void FlowLog::on_tick(table::TickContext& tick) {
    final_rows_.clear();
    ended_.collect(tick, final_rows_);
    if (final_rows_.empty()) return;
    const auto dropped = queue_.push(final_rows_.begin(), final_rows_.end());
    if (dropped) counters_.dropped.fetch_add(dropped, std::memory_order_relaxed);
}

void FlowLog::note(std::string text) {
    if (on_note_) {
        on_note_(text);
        return;
    }
    std::lock_guard lock(notes_mutex_);
    notes_.push_back(std::move(text));
}

std::vector<std::string> FlowLog::take_notes() {
    std::lock_guard lock(notes_mutex_);
    return std::exchange(notes_, {});
}

void FlowLog::rotate() {
    fd_.reset();
    // FILE.(n-1) -> FILE.n ... FILE -> FILE.1; the oldest falls off.
    for (unsigned i = config_.rotate_count; i > 1; --i) {
        const std::string from = config_.path + "." + std::to_string(i - 1);
        const std::string to = config_.path + "." + std::to_string(i);
        rename(from.c_str(), to.c_str());
    }
    if (rename(config_.path.c_str(), (config_.path + ".1").c_str()) != 0 && errno != ENOENT)
        note(errno_message("flow log: cannot rotate '" + config_.path + "'", errno));
    counters_.rotations.fetch_add(1, std::memory_order_relaxed);
    if (!open_file()) note(errno_message("flow log: cannot open '" + config_.path + "'", errno));
}

void FlowLog::run(std::stop_token stop) {
    std::vector<table::FlowRow> rows;
    while (!stop.stop_requested()) {
        queue_.pop_all(rows, std::chrono::milliseconds(500), stop);
        write_lines(rows);
    }
    queue_.pop_all(rows, std::chrono::milliseconds(0), stop);
    write_lines(rows);
}

void FlowLog::write_lines(std::vector<table::FlowRow>& rows) {
    take_reconfiguration();
    if (reopen_.exchange(false)) {
        fd_.reset();
        if (!open_file())
            note(errno_message("flow log: cannot reopen '" + config_.path + "'", errno));
    }
    if (rows.empty()) return;
    if (!fd_ && !open_file()) {
        counters_.dropped.fetch_add(rows.size(), std::memory_order_relaxed);
        return;
    }
    const auto latest = hub_.latest();
    table::Snapshot frame;
    if (latest) frame.strings = latest->strings;
    std::string buffer;
    std::size_t in_buffer = 0;
    auto flush = [&]() {
        if (buffer.empty()) return;
        std::string_view data = buffer;
        if (partial_line_) {
            // Finish the torn line of an earlier failure, so every other line still parses.
            if (::write(fd_.get(), "\n", 1) == 1) partial_line_ = false;
        }
        while (!data.empty()) {
            const ssize_t n = ::write(fd_.get(), data.data(), data.size());
            if (n > 0) {
                data.remove_prefix(static_cast<std::size_t>(n));
                size_ += static_cast<std::uint64_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            const int err = n < 0 ? errno : ENOSPC;
            counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
            // Count what did not get out: the whole lines left in the buffer.
            std::size_t lost = 0;
            for (char c : data)
                if (c == '\n') ++lost;
            if (data.size() != buffer.size() && data.front() != '\n' &&
                buffer[buffer.size() - data.size() - 1] != '\n')
                partial_line_ = true;
            counters_.dropped.fetch_add(lost, std::memory_order_relaxed);
            counters_.lines.fetch_add(in_buffer - lost, std::memory_order_relaxed);
            if (!failing_)
                note(errno_message("flow log '" + config_.path +
                                       "': cannot write (flows are dropped from the log until "
                                       "it can write again; collection goes on)",
                                   err));
            failing_ = true;
            buffer.clear();
            in_buffer = 0;
            return;
        }
        if (failing_) note("flow log '" + config_.path + "': writing again");
        failing_ = false;
        counters_.lines.fetch_add(in_buffer, std::memory_order_relaxed);
        buffer.clear();
        in_buffer = 0;
    };
    for (const auto& row : rows) {
        frame.stats.time_ns = row.closed_ns ? row.closed_ns : (latest ? latest->stats.time_ns : 0);
        std::string line = format_(frame, row);
        line += '\n';
        if (config_.rotate_size && size_ + buffer.size() + line.size() > config_.rotate_size &&
            size_ + buffer.size() > 0) {
            flush();
            rotate();
            if (!fd_) {
                counters_.dropped.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
        }
        buffer += line;
        ++in_buffer;
        if (buffer.size() >= 1 << 16) flush();
    }
    flush();
}

}  // namespace flowtop::exporters
