#pragma once
// Draws the live view from the view model into a Terminal: header like top's, the tab's
// lines, a TX/RX summary like iftop's, and the prompt, help or detail panel.
#include <cstdint>
#include <optional>
#include <string>

#include "flowtop/ui/terminal.hpp"
#include "flowtop/ui/view_model.hpp"

namespace flowtop::ui {

// Totals since start, averages and peaks of the whole table, iftop-style.
class Summary {
public:
    void update(const table::Snapshot& snap);
    std::uint64_t orig_total() const { return departed_orig_ + live_orig_; }
    std::uint64_t reply_total() const { return departed_reply_ + live_reply_; }
    double orig_rate(RateWindow w) const { return orig_rate_[static_cast<int>(w) + 1]; }
    double reply_rate(RateWindow w) const { return reply_rate_[static_cast<int>(w) + 1]; }
    double orig_peak() const { return orig_peak_; }
    double reply_peak() const { return reply_peak_; }
    double events_per_s() const { return events_per_s_; }
    // Flows in the frame by protocol: tcp, udp, icmp (both versions), other.
    const std::size_t* by_proto() const { return by_proto_; }

private:
    std::uint64_t departed_orig_ = 0, departed_reply_ = 0, live_orig_ = 0, live_reply_ = 0;
    double orig_rate_[4] = {}, reply_rate_[4] = {};
    double orig_peak_ = 0, reply_peak_ = 0, events_per_s_ = 0;
    std::uint64_t last_seq_ = 0, last_events_ = 0;
    std::size_t by_proto_[4] = {};
};

struct UiState {
    bool help = false;
    bool detail = false;
    bool prompt = false;           // the filter prompt is open
    std::string prompt_text;
    std::optional<FilterError> prompt_error;
    bool show_source = false;
    bool bits = false;
    bool totals = false;           // cumulative bytes instead of rates in the rate columns
    bool bars = false;
    bool log_bars = false;
    std::string status;            // a one-line message in the bottom row
    Summary summary;
};

inline constexpr int k_min_width = 40;
inline constexpr int k_min_height = 10;

// Rows available for lines at this terminal height.
int list_rows(int height);

// Refreshes the model for the visible rows and draws one frame.
void render(Terminal& term, ViewModel& model, const UiState& ui);

// The help screen's text, one key a line ("key  what it does").
const std::vector<std::string>& help_lines();

}  // namespace flowtop::ui
