#pragma once
// The pure model behind the live view and batch ordering: filter -> sort -> visible rows, plus
// grouped tabs. It never touches a terminal, so every behaviour here is unit-tested.
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "flowtop/enrich/dhcp_leases.hpp"
#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/filter_expr.hpp"
#include "flowtop/ui/flow_filter.hpp"
#include "flowtop/ui/sort_key.hpp"

namespace flowtop::ui {

// Which rate a column shows: the last tick, or the 2 / 10 / 40 s averages.
enum class RateWindow { tick = -1, s2 = 0, s10 = 1, s40 = 2 };
const char* rate_window_name(RateWindow w);
// The config file's words for a window: tick, 2s, 10s, 40s.
const char* rate_window_key(RateWindow w);
std::optional<RateWindow> parse_rate_window(std::string_view key);
double orig_rate_of(const table::FlowRow& r, RateWindow w);
double reply_rate_of(const table::FlowRow& r, RateWindow w);

// Orders pointers to rows; keeps only the first `limit` in order (partial sort) when given.
void sort_rows(std::vector<const table::FlowRow*>& rows, const table::Snapshot& snap, SortKey key,
               bool reverse, RateWindow window, std::size_t limit = SIZE_MAX);

enum class Tab { flows, processes, hosts, countries, alerts, table, clients };
inline constexpr int k_tab_count = 7;
// The order Tab cycles through and the header lists: the "who" tabs (process, LAN client)
// together after the flows.
inline constexpr Tab k_tab_order[k_tab_count] = {
    Tab::flows, Tab::processes, Tab::clients, Tab::hosts, Tab::countries, Tab::alerts, Tab::table};
Tab next_tab(Tab tab);
const char* tab_name(Tab tab);

// One row of a grouped tab.
struct Group {
    std::string key;     // process "curl (1234)", host address or name, country code
    std::string filter;  // the filter expression that shows this group's flows
    std::size_t flows = 0;
    std::uint64_t orig_bytes = 0, reply_bytes = 0;
    double orig_rate = 0, reply_rate = 0;
    std::string detail;     // e.g. the top processes of a country; the Table tab: what it counts by
    std::string scope;      // Hosts: "local" (this host), "LAN" or "remote"
    std::string countries;  // Clients: the countries of its destinations, busiest first
    std::string name;       // Countries: the country's English name, shown after the code
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
    // The addresses changed (an interface came or went): recompute with the new set.
    void set_local(LocalAddresses local) {
        local_ = std::move(local);
        last_snap_ = nullptr;
    }
    const LocalAddresses& local() const { return local_; }
    const enrich::LeaseBook* leases() const { return leases_; }
    // Names of LAN clients from DHCP leases (the Clients tab); null for none. Not owned.
    void set_leases(const enrich::LeaseBook* leases) {
        leases_ = leases;
        last_snap_ = nullptr;
    }

    Settings& settings() { return settings_; }
    const Settings& settings() const { return settings_; }

    // A new frame from the writer; ignored while paused.
    void offer(table::SnapshotPtr snap);
    void set_paused(bool paused) { paused_ = paused; }
    bool paused() const { return paused_; }
    const table::SnapshotPtr& snapshot() const { return snap_; }

    // Sets the filter; on a syntax error keeps the previous one and returns false.
    bool set_filter(const std::string& text, FilterError* error);
    void set_filter(FilterExpr filter) { filter_ = std::move(filter); }
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
    void select_first() {
        selected_ = 0;
        pin_selection();
    }
    void select_last() {
        selected_ = line_count() ? line_count() - 1 : 0;
        pin_selection();
    }
    const table::FlowRow* selected_flow() const;
    const Group* selected_group() const;

    // Alerts tab (newest first; each line a Group with key "#id", filter "alert:id"). Who
    // acknowledged or cleared what is the viewer's own state: the writer never waits for it.
    const std::vector<std::shared_ptr<const table::Alert>>& alerts() const { return alerts_; }
    const table::Alert* selected_alert() const;
    void acknowledge(std::uint64_t id) { acked_.insert(id); }
    void acknowledge_all();
    void clear(std::uint64_t id) { cleared_.insert(id); }
    void clear_all();
    bool acknowledged(std::uint64_t id) const { return id <= acked_upto_ || acked_.contains(id); }
    // Alerts in the frame neither acknowledged nor cleared (the header's badge).
    std::size_t unacknowledged() const;

  private:
    bool shown(const table::FlowRow& row) const;
    void pin_selection();
    void build_groups();
    void build_clients();
    void sort_groups();
    void build_alerts();
    bool cleared(std::uint64_t id) const { return id <= cleared_upto_ || cleared_.contains(id); }

    Settings settings_;
    LocalAddresses local_;
    const enrich::LeaseBook* leases_ = nullptr;
    table::SnapshotPtr snap_;
    bool paused_ = false;
    FilterExpr filter_;
    std::vector<const table::FlowRow*> matched_;
    std::vector<const table::FlowRow*> sorted_;  // the first scroll+visible of matched_, ordered
    std::vector<Group> groups_;
    std::vector<std::shared_ptr<const table::Alert>> alerts_;  // parallel to groups_ (alerts tab)
    std::set<std::uint64_t> acked_, cleared_;
    std::uint64_t acked_upto_ = 0, cleared_upto_ = 0;  // "all" up to this id
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
