#pragma once
// The pure model behind the live view and batch ordering: filter -> sort -> visible rows, plus
// grouped tabs. It never touches a terminal, so every behaviour here is unit-tested.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/flow_filter.hpp"

namespace flowtop::ui {

enum class SortKey { rate, orig_rate, reply_rate, bytes, orig_bytes, reply_bytes, age, proto,
                     state, src, dst, dport, process, country, flows };
// The sortable columns in the order `<` and `>` walk through them.
const std::vector<SortKey>& sort_keys();
const char* sort_key_name(SortKey key);
std::optional<SortKey> parse_sort_key(std::string_view name);

// Which rate a column shows: the last tick, or the 2 / 10 / 40 s averages.
enum class RateWindow { tick = -1, s2 = 0, s10 = 1, s40 = 2 };
const char* rate_window_name(RateWindow w);
double orig_rate_of(const table::FlowRow& r, RateWindow w);
double reply_rate_of(const table::FlowRow& r, RateWindow w);

// Orders pointers to rows; keeps only the first `limit` in order (partial sort) when given.
void sort_rows(std::vector<const table::FlowRow*>& rows, const table::Snapshot& snap, SortKey key,
               bool reverse, RateWindow window, std::size_t limit = SIZE_MAX);

enum class Tab { flows, processes, hosts, countries };
const char* tab_name(Tab tab);

// One row of a grouped tab.
struct Group {
    std::string key;    // process "curl (1234)", host address or name, country code
    std::string filter; // the filter expression that shows this group's flows
    std::size_t flows = 0;
    std::uint64_t orig_bytes = 0, reply_bytes = 0;
    double orig_rate = 0, reply_rate = 0;
    std::string detail;  // e.g. the top processes of a country
};

class ViewModel {
public:
    struct Settings {
        Tab tab = Tab::flows;
        SortKey sort = SortKey::rate;
        bool reverse = false;
        RateWindow window = RateWindow::tick;
        bool active_only = false;  // hide flows without traffic in the shown window
        std::vector<std::uint8_t> hidden_protos;
        FlowFilter command_line;  // -4 -6 -T -U -D -I -S
        friend bool operator==(const Settings&, const Settings&) = default;
    };

    explicit ViewModel(LocalAddresses local = {}) : local_(std::move(local)) {}

    Settings& settings() { return settings_; }
    const Settings& settings() const { return settings_; }

    // A new frame from the writer; ignored while paused.
    void offer(table::SnapshotPtr snap);
    void set_paused(bool paused) { paused_ = paused; }
    bool paused() const { return paused_; }
    const table::SnapshotPtr& snapshot() const { return snap_; }

    // Sets the filter; on a syntax error keeps the previous one and returns false.
    bool set_filter(const std::string& text, FilterError* error);
    const std::string& filter_text() const { return filter_.text(); }

    // Recomputes what is shown; `visible` rows are needed below `scroll`.
    void refresh(std::size_t visible);

    // Flows tab.
    std::size_t match_count() const { return matched_.size(); }
    const std::vector<const table::FlowRow*>& rows() const { return sorted_; }
    // Grouped tabs.
    const std::vector<Group>& groups() const { return groups_; }
    std::size_t line_count() const {
        return settings_.tab == Tab::flows ? matched_.size() : groups_.size();
    }

    // Selection: a line index that follows the same flow (by id) or group (by key).
    std::size_t selected() const { return selected_; }
    std::size_t first_line() const { return scroll_; }
    void move_selection(long delta, std::size_t visible);
    void select_first() { selected_ = 0; pin_selection(); }
    void select_last() { selected_ = line_count() ? line_count() - 1 : 0; pin_selection(); }
    const table::FlowRow* selected_flow() const;
    const Group* selected_group() const;

private:
    bool shown(const table::FlowRow& row) const;
    void pin_selection();
    void build_groups();

    Settings settings_;
    LocalAddresses local_;
    table::SnapshotPtr snap_;
    bool paused_ = false;
    FilterExpr filter_;
    std::vector<const table::FlowRow*> matched_;
    std::vector<const table::FlowRow*> sorted_;  // the first scroll+visible of matched_, ordered
    std::vector<Group> groups_;
    std::size_t selected_ = 0;
    std::size_t scroll_ = 0;
    std::optional<ct::FlowKey> selected_id_;
    std::optional<std::string> selected_key_;
    // What the last refresh was computed from: a keypress that changes none of it (moving
    // the selection) reuses the filtered rows instead of scanning the table again.
    const table::Snapshot* last_snap_ = nullptr;
    std::string last_filter_;
    Settings last_settings_;
};

}  // namespace flowtop::ui
