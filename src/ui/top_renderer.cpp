#include "flowtop/ui/top_renderer.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/table_pressure.hpp"

#ifndef FLOWTOP_VERSION
#define FLOWTOP_VERSION "0.0.0"
#endif

namespace flowtop::ui {

void Summary::update(const table::Snapshot& snap) { stats_ = snap.stats; }

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
        "              user: cc: netns: dir:in|out|fwd nat:snat|dnat|both|none client:",
        "              status:unreplied|replied|assured|offload, free text;",
        "              and or not ( ); Esc clears",
        "Space p       pause / resume the display (collection goes on)",
        "Enter         details of the selected flow; on a group, show its flows",
        "K  F9         delete the selected flow's conntrack entry (asks first; does not",
        "              block the hosts: the kernel forgets the state, the next packet is new)",
        "Tab           cycle Flows, Processes, Clients, Hosts, Countries, Alerts, Table",
        "T U D I S     show / hide TCP, UDP, DCCP, ICMP, SCTP",
        "a             active flows only (traffic in the shown rate window)",
        "s             source columns on / off",
        "b             rates in bits/s or bytes/s",
        "m             units: bytes/s, bits/s, cumulative bytes (cycles)",
        "w             rate window: last tick, 2 s, 10 s, 40 s (sort follows)",
        "1 2 3         sort by the rate over 2 s, 10 s, 40 s",
        "c             cumulative totals instead of rates",
        "n             host names (reverse DNS) or addresses; off stops new lookups",
        "N             service names or port numbers",
        "W  F2         save the settings to ~/.config/flowtop/flowtoprc",
        "B  L          rate bars on / off, linear / log scale",
        "mouse         wheel scrolls, click selects",
        "!             Alerts tab (newest first; flows marked ! are evidence of an alert)",
        "a A  x X      in Alerts: acknowledge the selected / all, clear the selected / all",
        "Enter         in Alerts: the alert's flows (filter alert:N)",
    };
    return lines;
}

namespace {

struct Column {
    const char* title;
    int width;  // 0: flexible
    bool right;
    int priority;               // higher is dropped first when the terminal is narrow
    const char* key = nullptr;  // the name hide_columns (flowtoprc) uses
    int short_width = 0;        // abbreviated (e.g. ESTAB) before anything is dropped; 0: never
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
    if (s < 60)
        std::snprintf(buf, sizeof buf, "%.0fs", s);
    else if (s < 3600)
        std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
    else if (s < 86400)
        std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
    else
        std::snprintf(buf, sizeof buf, "%.1fd", s / 86400);
    return buf;
}

// Picks the columns that fit `width`: when they do not, the abbreviable ones shrink first,
// then the highest priority is dropped first; the flexible columns share what is left.
std::vector<int> layout(const std::vector<Column>& cols, int width, std::vector<bool>& shown) {
    shown.assign(cols.size(), true);
    std::vector<int> fixed_w(cols.size());
    for (std::size_t i = 0; i < cols.size(); ++i) fixed_w[i] = cols[i].width;
    auto used = [&] {
        int w = 0, n = 0;
        for (std::size_t i = 0; i < cols.size(); ++i) {
            if (!shown[i]) continue;
            ++n;
            w += fixed_w[i] ? fixed_w[i] : 12;  // a flexible column needs at least 12
        }
        return w + n - 1;
    };
    if (used() > width)
        for (std::size_t i = 0; i < cols.size(); ++i)
            if (cols[i].short_width) fixed_w[i] = cols[i].short_width;
    for (int p = 9; p > 0 && used() > width; --p)
        for (std::size_t i = 0; i < cols.size(); ++i)
            if (cols[i].priority == p) shown[i] = false;
    int fixed = 0, n = 0, flex = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        if (!shown[i]) continue;
        ++n;
        if (fixed_w[i])
            fixed += fixed_w[i];
        else
            ++flex;
    }
    const int spare = std::max(0, width - fixed - (n - 1));
    std::vector<int> widths(cols.size(), 0);
    int given = 0, seen_flex = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        if (!shown[i]) continue;
        if (fixed_w[i]) {
            widths[i] = fixed_w[i];
        } else {
            ++seen_flex;
            widths[i] = seen_flex == flex ? spare - given : spare / std::max(1, flex);
            given += widths[i];
        }
    }
    return widths;
}

// The layout of the columns not hidden, so that they get the room of those that are; a hidden
// column comes back as not shown, with width 0.
std::vector<int> layout_without(const std::vector<Column>& cols, const std::vector<bool>& hidden,
                                int width, std::vector<bool>& shown) {
    std::vector<Column> visible;
    for (std::size_t i = 0; i < cols.size(); ++i)
        if (!hidden[i]) visible.push_back(cols[i]);
    std::vector<bool> visible_shown;
    const auto visible_widths = layout(visible, width, visible_shown);
    shown.clear();
    std::vector<int> widths;
    for (std::size_t i = 0, j = 0; i < cols.size(); ++i) {
        shown.push_back(!hidden[i] && visible_shown[j]);
        widths.push_back(hidden[i] ? 0 : visible_widths[j]);
        if (!hidden[i]) ++j;
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

// The column titles, as a header row.
void draw_titles(Terminal& t, int y, const std::vector<Column>& cols,
                 const std::vector<bool>& shown, const std::vector<int>& widths) {
    std::vector<std::string> titles;
    titles.reserve(cols.size());
    for (const auto& c : cols) titles.emplace_back(c.title);
    draw_row(t, y, cols, shown, widths, titles, Style::header);
}

void draw_bar(Terminal& t, int y, double value, double max, bool log_scale) {
    if (max <= 0 || value <= 0) return;
    double share = log_scale ? std::log1p(value) / std::log1p(max) : value / max;
    const int cells = static_cast<int>(std::lround(share * t.width()));
    // The bar is a style over the row's first cells, like iftop's, without hiding the text.
    t.restyle(y, 0, std::min(cells, t.width()), Style::bar);
}

std::string endpoint_text(const table::Snapshot& snap, const table::FlowRow& r, bool source,
                          bool names) {
    const auto& ct = r.ct;
    const Addr& a = source ? ct.orig.src : ct.orig.dst;
    if (!names) return a.to_string(ct.family);
    const auto name = snap.str(source ? r.src_name : r.dst_name);
    return name.empty() ? a.to_string(ct.family) : std::string(name);
}

// An endpoint cell with what NAT made of the flow, so a router's view shows the translation
// without a column of its own (it fits at 80 columns): the source as "client\u2192WAN:port"
// (masquerade), the destination as "public\u2192internal:port" (a port forward); with the
// source column off, a masqueraded flow's destination says "via WAN:port". What does not fit
// the cell whole is left out rather than cut, so no half address ever shows: a port forward
// keeps its target ("\u2192internal:port"), the NAT column and the details keep the rest.
std::string nat_endpoint_text(const table::Snapshot& snap, const table::FlowRow& r, bool source,
                              bool names, bool source_shown, int width) {
    std::string plain = endpoint_text(snap, r, source, names);
    const auto& ct = r.ct;
    const ct::Nat nat = ct::nat_of(ct);
    const bool snat = nat == ct::Nat::snat || nat == ct::Nat::both;
    const bool dnat = nat == ct::Nat::dnat || nat == ct::Nat::both;
    const std::string wan = addr_port_text(ct, ct.reply.dst, ct.reply.dport);
    const std::string target = "\u2192" + addr_port_text(ct, ct.reply.src, ct.reply.sport);
    std::vector<std::string> choices;  // the fullest first
    if (source && snat) choices.push_back(plain + "\u2192" + wan);
    if (!source) {
        std::string text = plain;
        if (dnat) text += target;
        if (snat && !source_shown) choices.push_back(text + " via " + wan);
        if (dnat) {
            choices.push_back(text);
            choices.push_back(target);
        }
    }
    for (const auto& c : choices)
        if (display_width(c) <= static_cast<std::size_t>(std::max(0, width))) return c;
    return plain;
}

std::string port_text(const table::Snapshot& snap, const table::FlowRow& r, bool numbers) {
    const auto& ct = r.ct;
    if (ct.proto == IPPROTO_ICMP || ct.proto == IPPROTO_ICMPV6)
        return "type " + std::to_string(ct.icmp_type);
    const auto service = numbers ? std::string_view{} : snap.str(r.service);
    return service.empty() ? std::to_string(ct.orig.dport) : std::string(service);
}

// The state in 5 cells (the STATE column abbreviated at 80 columns).
std::string short_state(const std::string& state) {
    static const std::pair<const char*, const char*> k_short[] = {
        {"ESTABLISHED", "ESTAB"}, {"SYN_SENT", "SYN_S"},   {"SYN_RECV", "SYN_R"},
        {"FIN_WAIT", "FIN_W"},    {"CLOSE_WAIT", "CL_WT"}, {"LAST_ACK", "L_ACK"},
        {"TIME_WAIT", "TIMEW"},   {"SYN_SENT2", "SYN_2"},  {"CLOSED", "CLSD"},
        {"OFFLOAD", "OFFLD"}};
    for (const auto& [full, abbr] : k_short)
        if (state == full) return abbr;
    return state;
}

// A router's list: no flow shown has a process of this host, some are forwarded. Then the
// PROCESS column says CLIENT, and it names the LAN client either way.
bool router_view(const std::vector<const table::FlowRow*>& rows) {
    bool forwarded = false;
    for (const auto* r : rows) {
        if (r->pid) return false;
        forwarded |= r->forwarded;
    }
    return forwarded;
}

// Who a forwarded flow is for: its LAN client's lease name, reverse DNS name or address.
std::string forwarded_who(const ViewModel& model, const table::FlowRow& r) {
    const auto& ct = r.ct;
    const Addr* client = lan_client_addr(model.local(), ct);
    if (!client) return "(forwarded)";
    if (model.leases())
        if (auto name = model.leases()->name(ct.family, *client); !name.empty())
            return std::string(name);
    if (client == &ct.orig.src)
        if (auto name = model.snapshot()->str(r.src_name); !name.empty()) return std::string(name);
    return client->to_string(ct.family);
}

// The first header line, shorter where the terminal is narrow: the rates stay.
std::string first_header_line(const std::string& clock, std::size_t flows, const std::size_t* n,
                              const std::string& up, const std::string& down, int width) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "flowtop %s - %s  flows %zu (tcp %zu, udp %zu, icmp %zu, other %zu)  "
                  "\u2191 %s  \u2193 %s",
                  FLOWTOP_VERSION, clock.c_str(), flows, n[0], n[1], n[2], n[3], up.c_str(),
                  down.c_str());
    if (display_width(line) <= static_cast<std::size_t>(width)) return line;
    std::string protos;
    const char* names[] = {"tcp", "udp", "icmp", "other"};
    for (int i = 0; i < 4; ++i)
        if (n[i])
            protos +=
                (protos.empty() ? "" : " ") + std::string(names[i]) + " " + std::to_string(n[i]);
    std::string compact = "flowtop " + clock + "  flows " + std::to_string(flows) +
                          (protos.empty() ? "" : " (" + protos + ")") + "  \u2191 " + up +
                          "  \u2193 " + down;
    if (display_width(compact) <= static_cast<std::size_t>(width)) return compact;
    return clock + "  flows " + std::to_string(flows) + "  \u2191 " + up + "  \u2193 " + down;
}

void draw_header(Terminal& t, const ViewModel& model, const UiState& ui) {
    const auto& snap = *model.snapshot();
    const auto& s = snap.stats;
    const std::size_t* n = ui.summary.by_proto();
    const auto w = model.settings().window;
    t.put(0, 0,
          fit(first_header_line(clock_text(s.time_ns), snap.rows.size(), n,
                                human_rate(ui.summary.orig_rate(w), ui.bits),
                                human_rate(ui.summary.reply_rate(w), ui.bits), t.width()),
              static_cast<std::size_t>(t.width())),
          Style::title);
    char line[512];
    std::snprintf(line, sizeof line,
                  "events %.0f/s  lost %llu  resyncs %llu  acct %s  timestamps %s  every %.1f s  "
                  "sweep %.0f s",
                  ui.summary.events_per_s(), static_cast<unsigned long long>(s.lost_events),
                  static_cast<unsigned long long>(s.resyncs), s.acct_on ? "on" : "OFF",
                  s.timestamp_on ? "on" : "OFF", s.interval_s > 0 ? s.interval_s : 0.0,
                  s.sweep_interval_s);
    // The table's use first: on a gateway it is what breaks first.
    std::string second = ct_use_text(s) + "  " + line;
    if (s.sources > 1) second += "  netns " + std::to_string(s.sources);
    if (model.paused()) second = "PAUSED  " + second;
    // The badge: unacknowledged alerts, first on the line so a narrow terminal keeps it.
    const std::size_t unacked = model.unacknowledged();
    const std::string badge = unacked ? "ALERTS " + std::to_string(unacked) + "  " : "";
    std::string ct_warn = ct_warning(s);
    // Offloaded flows bypass conntrack: a rate of 0 there need not mean idle.
    if (s.offloaded_flows)
        ct_warn += (ct_warn.empty() ? "" : "  ") + std::to_string(s.offloaded_flows) +
                   " offloaded: counters may be stale";
    const std::string warn = ct_warn.empty() ? "" : ct_warn + "  ";
    t.put(1, 0, fit(badge + warn + second, static_cast<std::size_t>(t.width())),
          model.paused() ? Style::paused : (s.lost_events ? Style::error : Style::normal));
    if (unacked || !warn.empty())
        t.restyle(1, 0, std::min(static_cast<int>(badge.size() + warn.size()) - 2, t.width()),
                  Style::error);
    std::string tabs;
    for (Tab tab : k_tab_order) {
        const bool on = tab == model.settings().tab;
        // One blank between tabs: seven of them and the filter still fit 120 columns.
        if (!tabs.empty()) tabs += ' ';
        tabs += on ? std::string("[") + tab_name(tab) + "]" : std::string(tab_name(tab));
    }
    tabs += ' ';
    tabs += " sort: " + std::string(sort_key_name(model.settings().sort)) +
            (model.settings().reverse ? " (reversed)" : "") +
            "  rates: " + (ui.totals ? "cumulative" : rate_window_name(w));
    if (!model.filter_text().empty()) tabs += "  filter: " + model.filter_text();
    t.put(2, 0, fit(tabs, static_cast<std::size_t>(t.width())), Style::dim);
}

void draw_flows(Terminal& t, ViewModel& model, const UiState& ui, int top, int rows) {
    const auto& snap = *model.snapshot();
    const auto w = model.settings().window;
    const int rate_w = ui.bits ? 12 : 10;
    // What users run flowtop for keeps its place longest (issue 16): who (the process, or on a
    // router the LAN client), where (destination, country), how much (rates); then the state
    // (abbreviated first: ESTAB), the byte totals, the age. At 80 columns that is PROTO,
    // STATE, DESTINATION, PORT, PROCESS, CC and both rates; with s, SOURCE instead of STATE.
    const bool router = router_view(model.rows());
    std::vector<Column> cols = {
        {"PROTO", 6, false, 1, "proto"},
        {"STATE", 11, false, 6, "state", 5},
        {"SOURCE", 0, false, ui.show_source ? 5 : 9},
        {"DESTINATION", 0, false, 0},
        {"PORT", 7, false, 0, "port"},
        {router ? "CLIENT" : "PROCESS", 14, false, 2, "process", 12},
        {"CC", 3, false, 3, "cc"},
        {"\u2191BYTES", 8, true, 8, "bytes"},
        {"\u2193BYTES", 8, true, 8, "bytes"},
        {ui.totals ? "\u2191TOTAL" : "\u2191RATE", rate_w, true, 0},
        {ui.totals ? "\u2193TOTAL" : "\u2193RATE", rate_w, true, 0},
        {"AGE", 6, true, 9, "age"},
    };
    // Watching several namespaces: which one a flow lives in, after the process.
    const bool namespaces = snap.stats.sources > 1;
    constexpr std::size_t k_netns_col = 6;
    if (namespaces) cols.insert(cols.begin() + k_netns_col, {"NETNS", 12, false, 7, "netns"});
    // NAT in the rows shown (a router's view): which ends were translated, right after the
    // destination; narrow enough to stay at 80 columns, where the cells' full translation
    // may be cut. An end host without NAT keeps its columns as they were.
    const bool any_nat = std::any_of(model.rows().begin(), model.rows().end(), [](const auto* r) {
        return ct::nat_of(r->ct) != ct::Nat::none;
    });
    constexpr std::size_t k_nat_col = 4;
    if (any_nat) cols.insert(cols.begin() + k_nat_col, {"NAT", 4, false, 4, "nat"});
    // Hidden columns (the source unless s, and hide_columns) are left out of the layout so the
    // others get their room, then put back as not shown.
    std::vector<bool> hidden(cols.size(), false);
    hidden[2] = !ui.show_source;
    for (std::size_t i = 0; i < cols.size(); ++i)
        if (cols[i].key && std::find(ui.hidden_columns.begin(), ui.hidden_columns.end(),
                                     cols[i].key) != ui.hidden_columns.end())
            hidden[i] = true;
    std::vector<bool> shown;
    const auto widths = layout_without(cols, hidden, t.width(), shown);
    draw_titles(t, top, cols, shown, widths);

    const auto& lines = model.rows();
    double max_rate = 0;
    for (const auto* r : lines)
        max_rate = std::max(max_rate, orig_rate_of(*r, w) + reply_rate_of(*r, w));
    const std::size_t first = model.first_line();
    for (int i = 0; i < rows && first + static_cast<std::size_t>(i) < lines.size(); ++i) {
        const auto& r = *lines[first + static_cast<std::size_t>(i)];
        const auto& ct = r.ct;
        const char* proto = ct::proto_name(ct.proto);
        const char* state = ct.proto == IPPROTO_TCP ? ct::tcp_state_name(ct.tcp_state) : nullptr;
        std::string process;
        if (r.pid)
            process = std::string(snap.str(r.comm));
        else if (r.forwarded)
            process = forwarded_who(model, r);
        auto bytes = [&](std::uint64_t v) {
            return r.has_counters() ? human_bytes(static_cast<double>(v)) : "?";
        };
        const bool offloaded = ct::offloaded(ct);
        auto rate = [&](double v, std::uint64_t total) {
            if (!r.has_counters()) return std::string("?");
            if (ui.totals) return human_bytes(static_cast<double>(total));
            if (!r.rate_known) return std::string("-");
            // Its packets bypass conntrack: no change in the counters is no sign of idleness.
            if (offloaded && v == 0) return std::string("stale");
            return human_rate(v, ui.bits);
        };
        std::vector<std::string> cells = {
            // '!': evidence of an alert (see the Alerts tab, filter alert:N).
            (r.alert ? "!" : "") + (proto ? std::string(proto) : std::to_string(ct.proto)),
            offloaded ? "OFFLOAD"
            : state   ? state
                      : (r.closed ? "CLOSED" : ""),
            nat_endpoint_text(snap, r, true, ui.names, shown[2], widths[2]),
            nat_endpoint_text(snap, r, false, ui.names, shown[2], widths[3]),
            port_text(snap, r, ui.port_numbers),
            process,
            std::string(snap.str(r.dst_country)),
            bytes(ct.orig_counters.bytes),
            bytes(ct.reply_counters.bytes),
            rate(orig_rate_of(r, w), ct.orig_counters.bytes),
            rate(reply_rate_of(r, w), ct.reply_counters.bytes),
            age_text(r.age_s(snap.stats.time_ns)),
        };
        if (namespaces) cells.insert(cells.begin() + k_netns_col, std::string(snap.str(r.netns)));
        if (any_nat) {
            const char* nat = ct::nat_name(ct::nat_of(ct));
            cells.insert(cells.begin() + k_nat_col, nat ? nat : "");
        }
        if (widths[1] < cols[1].width) cells[1] = short_state(cells[1]);
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
    const Tab tab = model.settings().tab;
    const bool countries = tab == Tab::countries;
    const bool clients = tab == Tab::clients;
    const bool hosts = tab == Tab::hosts;
    // Clients: the client's own directions (up: what it sent), its destinations' countries,
    // then its busiest destinations. Hosts: whether a host is this one, on the LAN or remote.
    std::vector<Column> cols = {
        {tab == Tab::processes ? "PROCESS"
         : countries           ? "COUNTRY"
         : clients             ? "CLIENT"
                               : "HOST",
         0, false, 0},
        {"WHERE", 6, false, 6},
        {"FLOWS", 6, true, 0},
        {"\u2191BYTES", 8, true, 4},
        {"\u2193BYTES", 8, true, 4},
        {"\u2191RATE", rate_w, true, 0},
        {"\u2193RATE", rate_w, true, 0},
        {"CC", 8, false, 3},
        {countries ? "TOP PROCESSES"
         : clients ? "TOP DESTINATIONS"
                   : "",
         countries || clients ? 0 : 1, false, countries || clients ? 5 : 9},
    };
    if (clients) {
        // The client's label ("name (address)") is what the tab is for: as wide as the widest
        // (up to a long IPv6 address with a name), cut to 24 before anything is dropped.
        std::size_t widest = 12;
        for (const auto& g : model.groups()) widest = std::max(widest, display_width(g.key));
        cols[0].width = static_cast<int>(std::min<std::size_t>(widest, 46));
        if (cols[0].width > 24) cols[0].short_width = 24;
    }
    std::vector<bool> hidden(cols.size(), false);
    hidden[1] = !hosts;
    hidden[7] = !clients;
    std::vector<bool> shown;
    const auto widths = layout_without(cols, hidden, t.width(), shown);
    draw_titles(t, top, cols, shown, widths);
    const auto& groups = model.groups();
    if (clients && groups.empty()) {
        t.put(top + 1, 0,
              fit("no LAN clients (flows with an end on this host's networks or --lan)",
                  static_cast<std::size_t>(t.width())),
              Style::dim);
        return;
    }
    const std::size_t first = model.first_line();
    for (int i = 0; i < rows && first + static_cast<std::size_t>(i) < groups.size(); ++i) {
        const auto& g = groups[first + static_cast<std::size_t>(i)];
        // A country's name after its code, as far as the column has room.
        std::vector<std::string> cells = {g.name.empty() ? g.key : g.key + " " + g.name,
                                          g.scope,
                                          std::to_string(g.flows),
                                          human_bytes(static_cast<double>(g.orig_bytes)),
                                          human_bytes(static_cast<double>(g.reply_bytes)),
                                          human_rate(g.orig_rate, ui.bits),
                                          human_rate(g.reply_rate, ui.bits),
                                          g.countries,
                                          g.detail};
        const bool selected = first + static_cast<std::size_t>(i) == model.selected();
        draw_row(t, top + 1 + i, cols, shown, widths, cells,
                 selected ? Style::selected : Style::normal);
    }
}

// The Table tab: who holds the conntrack table's entries, as a share of all in use.
void draw_table(Terminal& t, ViewModel& model, int top, int rows) {
    const auto& s = model.snapshot()->stats;
    std::vector<Column> cols = {
        {"BY", 7, false, 0},
        {"CONSUMER", 0, false, 0},
        {"ENTRIES", 8, true, 0},
        {"SHARE", 6, true, 3},
    };
    std::vector<bool> shown;
    auto widths = layout(cols, t.width(), shown);
    draw_titles(t, top, cols, shown, widths);
    const auto& groups = model.groups();
    const std::size_t first = model.first_line();
    for (int i = 0; i < rows && first + static_cast<std::size_t>(i) < groups.size(); ++i) {
        const auto& g = groups[first + static_cast<std::size_t>(i)];
        std::string share = "-";
        if (s.ct_known && s.ct_count > 0) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%.0f%%",
                          100.0 * static_cast<double>(g.flows) / static_cast<double>(s.ct_count));
            share = buf;
        }
        std::vector<std::string> cells = {g.detail, g.key, std::to_string(g.flows), share};
        const bool selected = first + static_cast<std::size_t>(i) == model.selected();
        draw_row(t, top + 1 + i, cols, shown, widths, cells,
                 selected ? Style::selected : Style::normal);
    }
}

void draw_alerts(Terminal& t, ViewModel& model, int top, int rows) {
    std::vector<Column> cols = {
        {"ID", 6, false, 0},   {"SEV", 6, false, 3},  {"KIND", 12, false, 2},
        {"LAST", 8, false, 4}, {"COUNT", 6, true, 5}, {"WHAT", 0, false, 0},
    };
    std::vector<bool> shown;
    auto widths = layout(cols, t.width(), shown);
    draw_titles(t, top, cols, shown, widths);
    const auto& alerts = model.alerts();
    if (alerts.empty()) {
        t.put(top + 1, 0, fit("no alerts", static_cast<std::size_t>(t.width())), Style::dim);
        return;
    }
    const std::size_t first = model.first_line();
    for (int i = 0; i < rows && first + static_cast<std::size_t>(i) < alerts.size(); ++i) {
        const auto& a = *alerts[first + static_cast<std::size_t>(i)];
        const bool acked = model.acknowledged(a.id);
        // Text from the network (names, messages) never reaches the terminal raw.
        std::string what = a.message;
        for (auto& ch : what)
            if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
        std::vector<std::string> cells = {(acked ? " #" : "*#") + std::to_string(a.id),
                                          table::severity_name(a.severity),
                                          table::alert_kind_name(a.kind),
                                          clock_text(a.last_ns),
                                          std::to_string(a.count),
                                          what};
        const bool selected = first + static_cast<std::size_t>(i) == model.selected();
        draw_row(t, top + 1 + i, cols, shown, widths, cells,
                 selected ? Style::selected
                          : (acked ? Style::dim
                                   : (a.severity == table::Severity::high ? Style::error
                                                                          : Style::normal)));
    }
}

void draw_detail(Terminal& t, const ViewModel& model, int top, int rows) {
    const auto* row = model.selected_flow();
    t.put(top, 0, fit("Flow details (Enter or Esc closes)", static_cast<std::size_t>(t.width())),
          Style::header);
    if (!row) return;
    std::vector<Field> fields;
    flow_fields(*model.snapshot(), *row, fields);
    const int col_w = t.width() / 2;
    if (const char* nat = ct::nat_name(ct::nat_of(row->ct)); nat && rows > 1) {
        // The two sides of the router side by side: what the LAN end sent, what left it; one
        // above the other, aligned, where half the width cannot hold a tuple.
        const std::string before = std::string("before ") + nat + ": " + original_text(row->ct);
        const std::string after = "after: " + translated_text(row->ct);
        const auto half_w = static_cast<std::size_t>(col_w - 1);
        if (display_width(before) <= half_w && display_width(after) <= half_w) {
            t.put(top + 1, 0, fit(before, half_w), Style::normal);
            t.put(top + 1, col_w, fit(after, half_w), Style::normal);
            ++top;
            --rows;
        } else if (rows > 2) {
            const auto w = static_cast<std::size_t>(t.width());
            t.put(top + 1, 0, fit(before, w), Style::normal);
            t.put(top + 2, 0, fit(std::string(before.find(':') - 5, ' ') + after, w),
                  Style::normal);
            top += 2;
            rows -= 2;
        }
    }
    const int half = (static_cast<int>(fields.size()) + 1) / 2;
    for (int i = 0; i < static_cast<int>(fields.size()); ++i) {
        const int y = top + 1 + (i % std::max(1, std::min(half, rows)));
        const int x = i < std::min(half, rows) ? 0 : col_w;
        if (i >= 2 * rows) break;
        std::string value = std::visit(
            [](const auto& v) -> std::string {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, Null>)
                    return "-";
                else if constexpr (std::is_same_v<T, bool>)
                    return v ? "yes" : "no";
                else if constexpr (std::is_same_v<T, std::string>)
                    return v;
                else if constexpr (std::is_same_v<T, double>) {
                    char b[32];
                    std::snprintf(b, sizeof b, "%.1f", v);
                    return b;
                } else
                    return std::to_string(v);
            },
            fields[static_cast<std::size_t>(i)].value);
        t.put(y, x,
              fit(std::string(fields[static_cast<std::size_t>(i)].key) + ": " + value,
                  static_cast<std::size_t>(col_w - 1)),
              Style::normal);
    }
}

void draw_summary(Terminal& t, const ViewModel& model, const UiState& ui, int y) {
    const auto& s = ui.summary;
    auto side = [&](const char* name, std::uint64_t total, double r2, double r10, double r40,
                    double peak) {
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
    if (!ui.confirm.empty()) {
        // The question above, the answers below: both whole at 80 columns for the words that
        // matter (what is deleted, and that the hosts are not blocked).
        const auto nl = ui.confirm.find('\n');
        t.put(y - 1, 0, fit(ui.confirm.substr(0, nl), static_cast<std::size_t>(t.width())),
              Style::error);
        if (nl != std::string::npos)
            t.put(y, 0, fit(ui.confirm.substr(nl + 1), static_cast<std::size_t>(t.width())),
                  Style::error);
        return;
    }
    if (ui.prompt) {
        std::string line = "filter: " + ui.prompt_text;
        if (ui.prompt_error) {
            // The caret sits under the column where the expression went wrong.
            t.put(
                y - 1, 0,
                fit(std::string(8 + ui.prompt_error->column, ' ') + "^ " + ui.prompt_error->message,
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
        line =
            "The table is empty: the kernel tracks connections here only once a firewall rule "
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
            t.put(4 + i, 0,
                  fit(lines[static_cast<std::size_t>(i)], static_cast<std::size_t>(t.width())),
                  Style::normal);
    } else if (ui.detail && model.selected_flow()) {
        draw_detail(t, model, 3, rows);
    } else if (model.settings().tab == Tab::flows) {
        draw_flows(t, model, ui, 3, rows);
    } else if (model.settings().tab == Tab::alerts) {
        draw_alerts(t, model, 3, rows);
    } else if (model.settings().tab == Tab::table) {
        draw_table(t, model, 3, rows);
    } else {
        draw_groups(t, model, ui, 3, rows);
    }
    draw_summary(t, model, ui, t.height() - 2);
    draw_bottom(t, model, ui, t.height() - 1);
    t.end_frame();
}

}  // namespace flowtop::ui
