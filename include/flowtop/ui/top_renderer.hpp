#pragma once
// Draws the live view from the view model into a Terminal: header like top's, the tab's
// lines, a TX/RX summary like iftop's, and the prompt, help or detail panel.
#include <cstdint>
#include <optional>
#include <string>

#include "flowtop/ui/terminal.hpp"
#include "flowtop/ui/view_model.hpp"

namespace flowtop::ui {

// Totals since start, averages and peaks of the whole table, iftop-style. The writer keeps
// them (table::FrameStats), so a view that skips frames still counts every departed flow.
class Summary {
  public:
    void update(const table::Snapshot& snap);
    std::uint64_t orig_total() const { return stats_.orig_bytes_total; }
    std::uint64_t reply_total() const { return stats_.reply_bytes_total; }
    double orig_rate(RateWindow w) const { return stats_.orig_rate[static_cast<int>(w) + 1]; }
    double reply_rate(RateWindow w) const { return stats_.reply_rate[static_cast<int>(w) + 1]; }
    double orig_peak() const { return stats_.orig_rate_peak; }
    double reply_peak() const { return stats_.reply_rate_peak; }
    double events_per_s() const { return stats_.events_per_s; }
    // Flows in the frame by protocol: tcp, udp, icmp (both versions), other.
    const std::uint64_t* by_proto() const { return stats_.flows_by_proto; }

  private:
    table::FrameStats stats_;
};

struct UiState {
    bool help = false;
    bool detail = false;
    bool prompt = false;  // the filter prompt is open
    std::string prompt_text;
    std::optional<FilterError> prompt_error;
    bool show_source = false;
    bool bits = false;
    bool totals = false;  // cumulative bytes instead of rates in the rate columns
    bool bars = false;
    bool log_bars = false;
    bool names = true;                        // host names from reverse DNS (key n), else addresses
    bool port_numbers = false;                // ports as numbers instead of service names (key N)
    std::vector<std::string> hidden_columns;  // flowtoprc hide_columns: proto state port ...
    std::string status;                       // a one-line message in the bottom row
    std::string confirm;  // a question in the bottom row (y answers it); empty when none
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
