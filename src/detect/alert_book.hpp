#pragma once
// Private to the detectors: the alerts being raised and folded, and the immutable log that
// each frame carries. Folding: an alert whose key saw evidence within the fold window is the
// same alert (count, last time and evidence grow); after a quiet fold window a new one opens.
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "flowtop/detect/config.hpp"
#include "flowtop/table/alert.hpp"

namespace flowtop::detect {

class AlertBook {
  public:
    explicit AlertBook(const DetectConfig& config) : config_(config) {}

    // The open alert of `key`, or a new one (created = true) when none is open. The reference
    // stays valid until publish(); change it freely, it becomes one new version.
    table::Alert& raise(table::AlertKind kind, const std::string& key, std::uint64_t now_ns,
                        bool& created);
    // The open alert of `key` (evidence within the fold window), or nullptr.
    table::Alert* open(const std::string& key, std::uint64_t now_ns);
    bool is_open(std::uint64_t id, std::uint64_t now_ns) const;
    // The alert `id` when still open, its last time moved to now; else nullptr. What raise()
    // does for a detector that kept the id, without building the fold key again.
    table::Alert* touch(std::uint64_t id, std::uint64_t now_ns);
    // Adds `flow` to the alert's evidence: sampled into Alert::flows, marked in the row.
    void evidence(table::Alert& alert, ct::FlowKey flow);

    // Flows to mark this tick: (flow, alert id).
    const std::vector<std::pair<ct::FlowKey, std::uint32_t>>& marks() const { return marks_; }
    // Ends the tick: changed alerts become new versions in a new log (if anything changed).
    void publish(std::uint64_t now_ns, std::uint64_t evictions, std::uint64_t tracked);
    std::shared_ptr<const table::AlertLog> log() const { return log_; }

  private:
    static constexpr std::size_t k_max_marks = 4096;
    table::Alert* working(std::uint64_t id);
    void close_quiet(std::uint64_t now_ns);

    const DetectConfig& config_;
    std::deque<std::shared_ptr<const table::Alert>> alerts_;  // ids contiguous, oldest first
    std::unordered_map<std::string, std::uint64_t> open_;     // fold key -> id
    std::unordered_map<std::uint64_t, std::shared_ptr<table::Alert>> changed_;  // this tick
    std::vector<std::pair<ct::FlowKey, std::uint32_t>> marks_;
    std::shared_ptr<const table::AlertLog> log_ = std::make_shared<table::AlertLog>();
    std::uint64_t next_id_ = 1;
    std::uint64_t seq_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t last_close_ns_ = 0;
    std::uint64_t log_evictions_ = 0, log_tracked_ = 0;
};

}  // namespace flowtop::detect
