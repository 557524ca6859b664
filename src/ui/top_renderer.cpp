#include "flowtop/ui/top_renderer.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "flowtop/ui/flow_fields.hpp"

#ifndef FLOWTOP_VERSION
#define FLOWTOP_VERSION "0.0.0"
#endif

namespace flowtop::ui {

void Summary::update(const table::Snapshot& snap) {
    if (snap.stats.seq == last_seq_) return;
    live_orig_ = live_reply_ = 0;
    for (auto& r : orig_rate_) r = 0;
    for (auto& r : reply_rate_) r = 0;
    for (auto& n : by_proto_) n = 0;
    for (const auto& row : snap.rows) {
        const auto p = row.ct.proto;
        ++by_proto_[p == IPPROTO_TCP ? 0 : p == IPPROTO_UDP ? 1
                    : (p == IPPROTO_ICMP || p == IPPROTO_ICMPV6) ? 2 : 3];
        if (!row.has_counters()) continue;
        if (row.gone) {
            // Its last frame: from now on its bytes live only in the total since start.
            departed_orig_ += row.ct.orig_counters.bytes;
            departed_reply_ += row.ct.reply_counters.bytes;
        } else {
            live_orig_ += row.ct.orig_counters.bytes;
            live_reply_ += row.ct.reply_counters.bytes;
        }
        if (!row.rate_known) continue;
        orig_rate_[0] += row.orig_rate;
        reply_rate_[0] += row.reply_rate;
        for (int w = 0; w < table::k_rate_windows; ++w) {
            orig_rate_[w + 1] += row.orig_rate_avg[w];
            reply_rate_[w + 1] += row.reply_rate_avg[w];
        }
    }
    orig_peak_ = std::max(orig_peak_, orig_rate_[0]);
    reply_peak_ = std::max(reply_peak_, reply_rate_[0]);
    if (last_seq_ && snap.stats.interval_s > 0)
        events_per_s_ = static_cast<double>(snap.stats.events - last_events_) / snap.stats.interval_s;
    last_seq_ = snap.stats.seq;
    last_events_ = snap.stats.events;
}

int list_rows(int height) { return std::max(0, height - 6); }  // 3 header, titles, 2 bottom

const std::vector<std::string>& help_lines() {
    static const std::vector<std::string> lines = {
        "q  F10        quit (the kernel settings are restored)",
        "?  F1         this help; any key closes it",
        "Up Down j k   move the selection (it stays on the same flow as rows move)",
        "PgUp PgDn     move a page          Home End   first / last line",
        "< > F6        sort by the previous / next column",
        "r             reverse the sort order",
        "/             filter: host:ADDR[/LEN] port:N[-M] proto: family: state: proc:",
        "              user: cc: netns: dir:in|out|fwd, free text; and or not ( ); Esc clears",
        "Space p       pause / resume the display (collection goes on)",
        "Enter         details of the selected flow; on a group, show its flows",
        "Tab           cycle Flows, Processes, Hosts, Countries",
        "T U D I S     show / hide TCP, UDP, DCCP, ICMP, SCTP",
        "a             active flows only (traffic in the shown rate window)",
        "s             source columns on / off",
        "b             rates in bits/s or bytes/s",
        "w             rate window: last tick, 2 s, 10 s, 40 s (sort follows)",
        "c             cumulative totals instead of rates",
        "B  L          rate bars on / off, linear / log scale",
        "mouse         wheel scrolls, click selects",
    };
    return lines;
}

namespace {

struct Column {
    const char* title;
    int width;   // 0: flexible
    bool right;
    int priority;  // higher is dropped first when the terminal is narrow
};

std::string clock_text(std::uint64_t ns) {
    time_t secs = static_cast<time_t>(ns / 1'000'000'000ull);
    tm local{};
    localtime_r(&secs, &local);
    char buf[16];
    std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
    return buf;
}

std::string age_text(double s) {
    char buf[16];
    if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
    else if (s < 3600) std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
    else if (s < 86400) std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
    else std::snprintf(buf, sizeof buf, "%.1fd", s / 86400);
    return buf;
}

// Picks the columns that fit `width`, dropping the highest priority first; the flexible
// columns share what is left.
std::vector<int> layout(const std::vector<Column>& cols, int width, std::vector<bool>& shown) {
    shown.assign(cols.size(), true);
    auto used = [&] {
        int w = 0, n = 0, flex = 0;
        for (std::size_t i = 0; i < cols.size(); ++i) {
            if (!shown[i]) continue;
            ++n;
            if (cols[i].width) w += cols[i].width;
            else { ++flex; w += 12; }  // a flexible column needs at least this
        }
        return w + n - 1;
    };
    for (int p = 9; p > 0 && used() > width; --p)
        for (std::size_t i = 0; i < cols.size(); ++i)
            if (cols[i].priority == p) shown[i] = false;
    int fixed = 0, n = 0, flex = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        if (!shown[i]) continue;
        ++n;
        if (cols[i].width) fixed += cols[i].width;
        else ++flex;
    }
    const int spare = std::max(0, width - fixed - (n - 1));
    std::vector<int> widths(cols.size(), 0);
    int given = 0, seen_flex = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        if (!shown[i]) continue;
        if (cols[i].width) {
            widths[i] = cols[i].width;
        } else {
            ++seen_flex;
            widths[i] = seen_flex == flex ? spare - given : spare / std::max(1, flex);
            given += widths[i];
        }
    }
    return widths;
}

void draw_row(Terminal& t, int y, const std::vector<Column>& cols, const std::vector<bool>& shown,
              const std::vector<int>& widths, const std::vector<std::string>& cells, Style style) {
    int x = 0;
    std::string line;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        if (!shown[i]) continue;
        if (!line.empty()) line += ' ';
        line += fit(cells[i], static_cast<std::size_t>(widths[i]), cols[i].right);
    }
    line = fit(line, static_cast<std::size_t>(t.width()));
    t.put(y, x, line, style);
}

void draw_bar(Terminal& t, int y, double value, double max, bool log_scale) {
    if (max <= 0 || value <= 0) return;
    double share = log_scale ? std::log1p(value) / std::log1p(max) : value / max;
    const int cells = static_cast<int>(std::lround(share * t.width()));
    // The bar is a style over the row's first cells, like iftop's, without hiding the text.
    t.restyle(y, 0, std::min(cells, t.width()), Style::bar);
}

std::string endpoint_text(const table::Snapshot& snap, const table::FlowRow& r, bool source) {
    const auto& ct = r.ct;
    const Addr& a = source ? ct.orig.src : ct.orig.dst;
    const auto name = snap.str(source ? r.src_name : r.dst_name);
    return name.empty() ? a.to_string(ct.family) : std::string(name);
}

std::string port_text(const table::Snapshot& snap, const table::FlowRow& r) {
    const auto& ct = r.ct;
    if (ct.proto == IPPROTO_ICMP || ct.proto == IPPROTO_ICMPV6)
        return "type " + std::to_string(ct.icmp_type);
    const auto service = snap.str(r.service);
    return service.empty() ? std::to_string(ct.orig.dport) : std::string(service);
}

void draw_header(Terminal& t, const ViewModel& model, const UiState& ui) {
    const auto& snap = *model.snapshot();
    const auto& s = snap.stats;
    const std::size_t* n = ui.summary.by_proto();
    const std::size_t tcp = n[0], udp = n[1], icmp = n[2], other = n[3];
    const auto w = model.settings().window;
    char line[512];
    std::snprintf(line, sizeof line,
                  "flowtop %s - %s  flows %zu (tcp %zu, udp %zu, icmp %zu, other %zu)  "
                  "\u2191 %s  \u2193 %s",
                  FLOWTOP_VERSION, clock_text(s.time_ns).c_str(), snap.rows.size(), tcp, udp,
                  icmp, other, human_rate(ui.summary.orig_rate(w), ui.bits).c_str(),
                  human_rate(ui.summary.reply_rate(w), ui.bits).c_str());
    t.put(0, 0, fit(line, static_cast<std::size_t>(t.width())), Style::title);
    std::snprintf(line, sizeof line,
                  "events %.0f/s  lost %llu  resyncs %llu  acct %s  timestamps %s  every %.1f s  "
                  "sweep %.0f s",
                  ui.summary.events_per_s(), static_cast<unsigned long long>(s.lost_events),
                  static_cast<unsigned long long>(s.resyncs), s.acct_on ? "on" : "OFF",
                  s.timestamp_on ? "on" : "OFF", s.interval_s > 0 ? s.interval_s : 0.0,
                  s.sweep_interval_s);
    std::string second = line;
    if (s.sources > 1) second += "  netns " + std::to_string(s.sources);
    if (model.paused()) second = "PAUSED  " + second;
    t.put(1, 0, fit(second, static_cast<std::size_t>(t.width())),
          model.paused() ? Style::paused : (s.lost_events ? Style::error : Style::normal));
    std::string tabs;
    for (Tab tab : {Tab::flows, Tab::processes, Tab::hosts, Tab::countries}) {
        const bool on = tab == model.settings().tab;
        tabs += on ? std::string("[") + tab_name(tab) + "] " : std::string(" ") + tab_name(tab) + "  ";
    }
    tabs += " sort: " + std::string(sort_key_name(model.settings().sort)) +
            (model.settings().reverse ? " (reversed)" : "") + "  rates: " +
            (ui.totals ? "cumulative" : rate_window_name(w));
    if (!model.filter_text().empty()) tabs += "  filter: " + model.filter_text();
    t.put(2, 0, fit(tabs, static_cast<std::size_t>(t.width())), Style::dim);
}

void draw_flows(Terminal& t, ViewModel& model, const UiState& ui, int top, int rows) {
    const auto& snap = *model.snapshot();
    const auto w = model.settings().window;
    const int rate_w = ui.bits ? 12 : 10;
    std::vector<Column> cols = {
        {"PROTO", 6, false, 0},       {"STATE", 11, false, 4},
        {"SOURCE", 0, false, ui.show_source ? 5 : 9}, {"DESTINATION", 0, false, 0},
        {"PORT", 7, false, 0},        {"PROCESS", 14, false, 8},
        {"CC", 3, false, 7},          {"\u2191BYTES", 8, true, 5},
        {"\u2193BYTES", 8, true, 5},  {ui.totals ? "\u2191TOTAL" : "\u2191RATE", rate_w, true, 0},
        {ui.totals ? "\u2193TOTAL" : "\u2193RATE", rate_w, true, 0},
        {"AGE", 6, true, 6},
    };
    // Watching several namespaces: which one a flow lives in, after the process.
    const bool namespaces = snap.stats.sources > 1;
    constexpr std::size_t k_netns_col = 6;
    if (namespaces) cols.insert(cols.begin() + k_netns_col, {"NETNS", 12, false, 6});
    if (!ui.show_source) cols[2].priority = 10;  // never shown
    std::vector<bool> shown;
    auto widths = layout(cols, t.width(), shown);
    if (!ui.show_source) shown[2] = false;
    widths = [&] {
        // Re-layout without the hidden source so the destination gets its room.
        std::vector<Column> c = cols;
        std::vector<bool> s2;
        if (!ui.show_source) c.erase(c.begin() + 2);
        auto w2 = layout(c, t.width(), s2);
        if (!ui.show_source) {
            w2.insert(w2.begin() + 2, 0);
            s2.insert(s2.begin() + 2, false);
        }
        shown = s2;
        return w2;
    }();
    std::vector<std::string> titles;
    for (const auto& c : cols) titles.emplace_back(c.title);
    draw_row(t, top, cols, shown, widths, titles, Style::header);

    const auto& lines = model.rows();
    double max_rate = 0;
    for (const auto* r : lines) max_rate = std::max(max_rate, orig_rate_of(*r, w) + reply_rate_of(*r, w));
    const std::size_t first = model.first_line();
    for (int i = 0; i < rows && first + static_cast<std::size_t>(i) < lines.size(); ++i) {
        const auto& r = *lines[first + static_cast<std::size_t>(i)];
        const auto& ct = r.ct;
        const char* proto = ct::proto_name(ct.proto);
        const char* state = ct.proto == IPPROTO_TCP ? ct::tcp_state_name(ct.tcp_state) : nullptr;
        std::string process;
        if (r.pid) process = std::string(snap.str(r.comm));
        else if (r.forwarded) process = "(forwarded)";
        auto bytes = [&](std::uint64_t v) { return r.has_counters() ? human_bytes(static_cast<double>(v)) : "?"; };
        auto rate = [&](double v, std::uint64_t total) {
            if (!r.has_counters()) return std::string("?");
            if (ui.totals) return human_bytes(static_cast<double>(total));
            if (!r.rate_known) return std::string("-");
            return human_rate(v, ui.bits);
        };
        std::vector<std::string> cells = {
            proto ? proto : std::to_string(ct.proto),
            state ? state : (r.closed ? "CLOSED" : ""),
            endpoint_text(snap, r, true),
            endpoint_text(snap, r, false),
            port_text(snap, r),
            process,
            std::string(snap.str(r.dst_country)),
            bytes(ct.orig_counters.bytes),
            bytes(ct.reply_counters.bytes),
            rate(orig_rate_of(r, w), ct.orig_counters.bytes),
            rate(reply_rate_of(r, w), ct.reply_counters.bytes),
            age_text(r.age_s(snap.stats.time_ns)),
        };
        if (namespaces) cells.insert(cells.begin() + k_netns_col, std::string(snap.str(r.netns)));
        const int y = top + 1 + i;
        const bool selected = first + static_cast<std::size_t>(i) == model.selected();
        draw_row(t, y, cols, shown, widths, cells,
                 selected ? Style::selected : (r.closed ? Style::closed : Style::normal));
        if (ui.bars && !selected)
            draw_bar(t, y, orig_rate_of(r, w) + reply_rate_of(r, w), max_rate, ui.log_bars);
    }
}

void draw_groups(Terminal& t, ViewModel& model, const UiState& ui, int top, int rows) {
    const int rate_w = ui.bits ? 12 : 10;
    const bool countries = model.settings().tab == Tab::countries;
    std::vector<Column> cols = {
        {model.settings().tab == Tab::processes ? "PROCESS"
         : countries                            ? "COUNTRY"
                                                : "HOST",
         0, false, 0},
        {"FLOWS", 6, true, 0},
        {"\u2191BYTES", 8, true, 4},
        {"\u2193BYTES", 8, true, 4},
        {"\u2191RATE", rate_w, true, 0},
        {"\u2193RATE", rate_w, true, 0},
        {countries ? "TOP PROCESSES" : "", countries ? 0 : 1, false, countries ? 5 : 9},
    };
    std::vector<bool> shown;
    auto widths = layout(cols, t.width(), shown);
    std::vector<std::string> titles;
    for (const auto& c : cols) titles.emplace_back(c.title);
    draw_row(t, top, cols, shown, widths, titles, Style::header);
    const auto& groups = model.groups();
    const std::size_t first = model.first_line();
    for (int i = 0; i < rows && first + static_cast<std::size_t>(i) < groups.size(); ++i) {
        const auto& g = groups[first + static_cast<std::size_t>(i)];
        std::vector<std::string> cells = {
            g.key, std::to_string(g.flows), human_bytes(static_cast<double>(g.orig_bytes)),
            human_bytes(static_cast<double>(g.reply_bytes)), human_rate(g.orig_rate, ui.bits),
            human_rate(g.reply_rate, ui.bits), g.detail};
        const bool selected = first + static_cast<std::size_t>(i) == model.selected();
        draw_row(t, top + 1 + i, cols, shown, widths, cells, selected ? Style::selected : Style::normal);
    }
}

void draw_detail(Terminal& t, const ViewModel& model, int top, int rows) {
    const auto* row = model.selected_flow();
    t.put(top, 0, fit("Flow details (Enter or Esc closes)", static_cast<std::size_t>(t.width())),
          Style::header);
    if (!row) return;
    std::vector<Field> fields;
    flow_fields(*model.snapshot(), *row, fields);
    const int half = (static_cast<int>(fields.size()) + 1) / 2;
    const int col_w = t.width() / 2;
    for (int i = 0; i < static_cast<int>(fields.size()); ++i) {
        const int y = top + 1 + (i % std::max(1, std::min(half, rows)));
        const int x = i < std::min(half, rows) ? 0 : col_w;
        if (i >= 2 * rows) break;
        std::string value = std::visit(
            [](const auto& v) -> std::string {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, Null>) return "-";
                else if constexpr (std::is_same_v<T, bool>) return v ? "yes" : "no";
                else if constexpr (std::is_same_v<T, std::string>) return v;
                else if constexpr (std::is_same_v<T, double>) {
                    char b[32];
                    std::snprintf(b, sizeof b, "%.1f", v);
                    return b;
                } else return std::to_string(v);
            },
            fields[static_cast<std::size_t>(i)].value);
        t.put(y, x, fit(std::string(fields[static_cast<std::size_t>(i)].key) + ": " + value,
                        static_cast<std::size_t>(col_w - 1)),
              Style::normal);
    }
}

void draw_summary(Terminal& t, const ViewModel& model, const UiState& ui, int y) {
    const auto& s = ui.summary;
    auto side = [&](const char* name, std::uint64_t total, double r2, double r10, double r40, double peak) {
        return std::string(name) + " " + human_bytes(static_cast<double>(total)) + "  " +
               human_rate(r2, ui.bits) + " " + human_rate(r10, ui.bits) + " " +
               human_rate(r40, ui.bits) + "  peak " + human_rate(peak, ui.bits);
    };
    std::string line =
        side("TX", s.orig_total(), s.orig_rate(RateWindow::s2), s.orig_rate(RateWindow::s10),
             s.orig_rate(RateWindow::s40), s.orig_peak()) +
        " | " +
        side("RX", s.reply_total(), s.reply_rate(RateWindow::s2), s.reply_rate(RateWindow::s10),
             s.reply_rate(RateWindow::s40), s.reply_peak()) +
        " | TOTAL " + human_bytes(static_cast<double>(s.orig_total() + s.reply_total()));
    (void)model;
    t.put(y, 0, fit(line, static_cast<std::size_t>(t.width())), Style::dim);
}

void draw_bottom(Terminal& t, const ViewModel& model, const UiState& ui, int y) {
    if (ui.prompt) {
        std::string line = "filter: " + ui.prompt_text;
        if (ui.prompt_error) {
            // The caret sits under the column where the expression went wrong.
            t.put(y - 1, 0, fit(std::string(8 + ui.prompt_error->column, ' ') + "^ " +
                                    ui.prompt_error->message,
                                static_cast<std::size_t>(t.width())),
                  Style::error);
        }
        t.put(y, 0, fit(line, static_cast<std::size_t>(t.width())), Style::normal);
        return;
    }
    std::string line = ui.status.empty()
                           ? "F1 help  / filter  < > sort  r reverse  Tab view  Space pause  q quit"
                           : ui.status;
    const auto& snap = *model.snapshot();
    if (ui.status.empty() && snap.rows.empty() && snap.stats.empty_at_start)
        line = "The table is empty: the kernel tracks connections here only once a firewall rule "
               "uses conntrack (nft 'ct state') or NAT is set up.";
    char count[64];
    std::snprintf(count, sizeof count, "  [%zu/%zu]", model.line_count() ? model.selected() + 1 : 0,
                  model.line_count());
    t.put(y, 0, fit(line + count, static_cast<std::size_t>(t.width())), Style::dim);
}

}  // namespace

void render(Terminal& t, ViewModel& model, const UiState& ui) {
    t.begin_frame();
    if (t.width() < k_min_width || t.height() < k_min_height) {
        model.refresh(0);
        t.put(0, 0, fit("terminal too small", static_cast<std::size_t>(t.width())), Style::error);
        char need[64];
        std::snprintf(need, sizeof need, "need %dx%d, have %dx%d", k_min_width, k_min_height,
                      t.width(), t.height());
        t.put(1, 0, fit(need, static_cast<std::size_t>(t.width())), Style::error);
        t.end_frame();
        return;
    }
    if (!model.snapshot()) {
        t.put(0, 0, "flowtop: reading the conntrack table...", Style::title);
        t.end_frame();
        return;
    }
    const int rows = list_rows(t.height());
    model.refresh(static_cast<std::size_t>(rows));
    draw_header(t, model, ui);
    if (ui.help) {
        t.put(3, 0, fit("Keys (any key closes this help)", static_cast<std::size_t>(t.width())),
              Style::header);
        const auto& lines = help_lines();
        for (int i = 0; i < static_cast<int>(lines.size()) && 4 + i < t.height() - 1; ++i)
            t.put(4 + i, 0, fit(lines[static_cast<std::size_t>(i)], static_cast<std::size_t>(t.width())),
                  Style::normal);
    } else if (ui.detail && model.selected_flow()) {
        draw_detail(t, model, 3, rows);
    } else if (model.settings().tab == Tab::flows) {
        draw_flows(t, model, ui, 3, rows);
    } else {
        draw_groups(t, model, ui, 3, rows);
    }
    draw_summary(t, model, ui, t.height() - 2);
    draw_bottom(t, model, ui, t.height() - 1);
    t.end_frame();
}

}  // namespace flowtop::ui
