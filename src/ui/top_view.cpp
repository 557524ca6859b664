#include "flowtop/ui/top_view.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <cstring>

#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/config_file.hpp"
#include "flowtop/ui/top_renderer.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/guardian.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/text.hpp"

// Last: curses defines macros (scroll, erase, ...) that would clash with names above.
#include <curses.h>

namespace flowtop::ui {
namespace {

// What a crash must undo, prepared before the screen is taken: async-signal-safe to apply.
termios g_saved_termios{};
bool g_have_termios = false;
// Mouse reporting off (every mode ncurses may use), alternate screen left, cursor shown.
constexpr char k_reset[] =
    "\033[?1000l\033[?1002l\033[?1003l\033[?1006l\033[?1049l\033[?25h\033[0m\r\n";

void restore_terminal_from_signal() noexcept {
    [[maybe_unused]] auto n = write(STDOUT_FILENO, k_reset, sizeof k_reset - 1);
    // The modes curses changes are those of the descriptor it writes to (newterm's output).
    if (g_have_termios) tcsetattr(STDOUT_FILENO, TCSANOW, &g_saved_termios);
}

// newterm, not initscr: initscr prints its own message and calls exit() when TERM is unknown,
// which skips every restore. newterm returns NULL and the error is flowtop's.
SCREEN* open_screen() {
    const char* term = std::getenv("TERM");
    if (!term || !*term)
        throw Error(
            "TERM is not set: the live view needs a terminal type (e.g. "
            "TERM=xterm-256color), or use --batch");
    SCREEN* screen = newterm(term, stdout, stdin);
    if (!screen)
        throw Error("cannot use terminal type '" + quote_input(term) +
                    "' (TERM): unknown here, or it cannot move the cursor; set TERM to your "
                    "terminal's type, or use --batch");
    // A terminal without cursor addressing (TERM=dumb, a printing terminal) cannot show the
    // table; curses would draw it as a stream of lines.
    char* cup = tigetstr(const_cast<char*>("cup"));
    // NOLINTNEXTLINE(performance-no-int-to-ptr): (char*)-1 is terminfo's "not a string"
    if (!cup || cup == reinterpret_cast<char*>(-1)) {
        endwin();
        delscreen(screen);
        throw Error("terminal type '" + quote_input(term) +
                    "' (TERM) cannot move the cursor, which the live view needs; use --batch, "
                    "or set TERM to your terminal's type");
    }
    return screen;
}

class NcursesTerminal final : public Terminal {
  public:
    explicit NcursesTerminal(bool want_colors) {
        g_have_termios = tcgetattr(STDOUT_FILENO, &g_saved_termios) == 0;
        signals::set_terminal_restore(restore_terminal_from_signal);
        // And for SIGKILL, which no handler sees: the guardian does the same.
        if (g_have_termios)
            guardian::arm_terminal(STDOUT_FILENO, STDOUT_FILENO, g_saved_termios,
                                   {k_reset, sizeof k_reset - 1});
        std::setlocale(LC_ALL, "");
        screen_ = open_screen();
        signals::set_terminal_restore(restore_terminal_from_signal);
        cbreak();
        noecho();
        nonl();
        keypad(stdscr, TRUE);
        nodelay(stdscr, TRUE);
        set_escdelay(25);
        curs_set(0);
        mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED, nullptr);
        colors_ = want_colors && has_colors() && !std::getenv("NO_COLOR");
        if (colors_) {
            start_color();
            use_default_colors();
            // Eight colours only: works on any colour terminal.
            init_pair(1, COLOR_CYAN, -1);
            init_pair(2, COLOR_BLACK, COLOR_GREEN);
            init_pair(3, COLOR_RED, -1);
            init_pair(4, COLOR_BLACK, COLOR_BLUE);
            init_pair(5, COLOR_YELLOW, -1);
        }
    }
    ~NcursesTerminal() override {
        endwin();
        delscreen(screen_);
        signals::set_terminal_restore(nullptr);
        guardian::disarm_terminal();
    }
    NcursesTerminal(const NcursesTerminal&) = delete;
    NcursesTerminal& operator=(const NcursesTerminal&) = delete;

    int width() const override { return COLS; }
    int height() const override { return LINES; }
    void begin_frame() override { erase(); }
    void put(int y, int x, std::string_view text, Style style) override {
        attr_t a = attr_of(style);
        attron(a);
        // What others control never reaches the terminal raw, whatever a caller forgot; one
        // '?' a byte keeps the width the renderer counted.
        if (!is_clean(text)) {
            scratch_ = replace_unsafe(text, '?');
            text = scratch_;
        }
        mvaddnstr(y, x, text.data(), static_cast<int>(text.size()));
        attroff(a);
    }
    void restyle(int y, int x, int n, Style style) override {
        mvchgat(y, x, n, attr_of(style), pair_of(style), nullptr);
    }
    // erase + one doupdate: curses sends only the cells that changed, so nothing flickers.
    void end_frame() override {
        wnoutrefresh(stdscr);
        doupdate();
    }

  private:
    short pair_of(Style s) const {
        if (!colors_) return 0;
        switch (s) {
            case Style::header:
                return 2;
            case Style::error:
                return 3;
            case Style::bar:
                return 4;
            case Style::paused:
                return 5;
            case Style::title:
                return 1;
            default:
                return 0;
        }
    }
    attr_t attr_of(Style s) const {
        attr_t a = A_NORMAL;
        switch (s) {
            case Style::title:
                a = A_BOLD;
                break;
            case Style::header:
                a = colors_ ? A_NORMAL : A_REVERSE;
                break;
            case Style::selected:
                a = A_REVERSE;
                break;
            case Style::dim:
                a = A_DIM;
                break;
            case Style::error:
                a = A_BOLD;
                break;
            case Style::bar:
                a = colors_ ? A_NORMAL : A_UNDERLINE;
                break;
            case Style::closed:
                a = A_DIM;
                break;
            case Style::paused:
                a = A_BOLD;
                break;
            case Style::normal:
                break;
        }
        return a | COLOR_PAIR(pair_of(s));
    }
    bool colors_ = false;
    SCREEN* screen_ = nullptr;
    std::string scratch_;
};

// stdin at its end (</dev/null, a closed pipe) or hung up (the terminal went away while a
// shell ignored SIGHUP): poll reports it at once every time, so the loop would spin at 100% of
// a core forever, holding the settings. Readable with nothing to read, three times running,
// is the end as well.
bool input_ended(const pollfd& in, int& empty_reads) {
    if (in.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
    if (!(in.revents & POLLIN)) {
        empty_reads = 0;
        return false;
    }
    int available = 0;
    if (ioctl(in.fd, FIONREAD, &available) == 0 && available > 0) {
        empty_reads = 0;
        return false;
    }
    return ++empty_reads >= 3;
}

class TopView {
  public:
    TopView(const table::SnapshotHub& hub, const Options& o, const TopHooks& hooks)
        : hub_(hub),
          options_(o),
          hooks_(hooks),
          model_(LocalAddresses::of_current_namespace(lan_networks(o))),
          leases_(lease_paths(o)) {
        leases_.refresh();
        model_.set_leases(&leases_);
        auto& s = model_.settings();
        s.command_line = FlowFilter(o);
        ui_.show_source = o.show_source;
        ui_.bits = o.bits;
        ui_.totals = o.totals;
        ui_.bars = o.bars;
        ui_.log_bars = o.log_bars;
        ui_.names = !o.no_dns;
        ui_.port_numbers = o.port_numbers;
        ui_.hidden_columns = o.hidden_columns;
        s.reverse = o.reverse;
        s.active_only = o.active_only;
        s.hidden_protos = o.hidden_protocols;
        if (auto w = parse_rate_window(o.rate_window)) s.window = *w;
        if (o.sort_key) s.sort = *o.sort_key;
        model_.set_filter(o.filter_expr);
        max_frames_ = o.count.value_or(0);
    }

    int run() {
        NcursesTerminal term(options_.color);
        bool dirty = true;
        std::uint64_t last_seq = 0;
        long frames = 0;
        int empty_reads = 0;
        while (!quit_) {
            pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {signals::wakeup_fd(), POLLIN, 0}};
            const int ready = os::poll(fds, 2, 50);
            if (signals::pending_exit_signal()) break;
            if (ready > 0 && input_ended(fds[0], empty_reads)) break;  // the same as the q key
            for (int ch; (ch = getch()) != ERR;) {
                handle_key(ch);
                dirty = true;
            }
            if (auto snap = hub_.latest(); snap && snap->stats.seq != last_seq) {
                last_seq = snap->stats.seq;
                // An address or route changed: the LAN may have; a lease file changed: names.
                if (address_watch_.changed(snap->stats.time_ns))
                    model_.set_local(LocalAddresses::of_current_namespace(lan_networks(options_)));
                if (leases_.refresh()) model_.set_leases(&leases_);
                ui_.summary.update(*snap);
                model_.offer(snap);
                dirty = true;
                if (max_frames_ && ++frames >= max_frames_) quit_ = true;
            }
            if (hub_.closed()) break;
            if (dirty) {
                render(term, model_, ui_);
                dirty = false;
            }
        }
        return 0;
    }

  private:
    std::size_t page() const { return static_cast<std::size_t>(std::max(1, list_rows(LINES))); }

    void cycle_sort(int step) {
        const auto& keys = sort_keys();
        auto& s = model_.settings();
        auto it = std::find(keys.begin(), keys.end(), s.sort);
        long i = (it - keys.begin() + step + static_cast<long>(keys.size())) %
                 static_cast<long>(keys.size());
        s.sort = keys[static_cast<std::size_t>(i)];
        ui_.status = std::string("sorted by ") + sort_key_name(s.sort);
    }

    // The settings in force, as the config file spells them: what W / F2 saves.
    Options current_options() const {
        Options o = options_;
        const auto& s = model_.settings();
        o.show_source = ui_.show_source;
        o.bits = ui_.bits;
        o.totals = ui_.totals;
        o.bars = ui_.bars;
        o.log_bars = ui_.log_bars;
        o.no_dns = !ui_.names;
        o.port_numbers = ui_.port_numbers;
        o.sort = sort_key_name(s.sort);
        o.reverse = s.reverse;
        o.rate_window = rate_window_key(s.window);
        o.active_only = s.active_only;
        o.hidden_protocols = s.hidden_protos;
        o.filter = model_.filter_text();
        return o;
    }

    void save_settings() {
        const auto path = save_path(options_);
        try {
            save_config(path, current_options());
            ui_.status = "settings saved to " + path;
        } catch (const std::exception& e) {
            ui_.status = std::string("cannot save the settings: ") + e.what();
        }
    }

    void sort_by_window(RateWindow w) {
        auto& s = model_.settings();
        s.window = w;
        if (s.sort != SortKey::orig_rate && s.sort != SortKey::reply_rate) s.sort = SortKey::rate;
        ui_.totals = false;
        ui_.status =
            std::string("sorted by ") + sort_key_name(s.sort) + " over " + rate_window_name(w);
    }

    void toggle_proto(std::uint8_t p) {
        auto& h = model_.settings().hidden_protos;
        auto it = std::find(h.begin(), h.end(), p);
        if (it == h.end())
            h.push_back(p);
        else
            h.erase(it);
    }

    void handle_prompt_key(int ch) {
        if (ch == 27) {  // Esc: close and clear the filter
            ui_.prompt = false;
            ui_.prompt_error.reset();
            model_.set_filter("", nullptr);
            return;
        }
        if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
            FilterError e;
            if (model_.set_filter(ui_.prompt_text, &e)) {
                ui_.prompt = false;
                ui_.prompt_error.reset();
            } else {
                ui_.prompt_error = e;  // the last valid filter stays in force
            }
            return;
        }
        if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
            if (!ui_.prompt_text.empty()) ui_.prompt_text.pop_back();
            return;
        }
        if (ch >= 32 && ch < 127) ui_.prompt_text += static_cast<char>(ch);
    }

    // The Alerts tab's own keys; false when the key is not one of them.
    bool handle_alert_key(int ch) {
        const table::Alert* a = model_.selected_alert();
        switch (ch) {
            case 'a':
                if (a) model_.acknowledge(a->id);
                if (a) ui_.status = "acknowledged #" + std::to_string(a->id);
                return true;
            case 'A':
                model_.acknowledge_all();
                ui_.status = "acknowledged all alerts";
                return true;
            case 'x':
                if (a) model_.clear(a->id);
                return true;
            case 'X':
                model_.clear_all();
                ui_.status = "cleared all alerts";
                return true;
            default:
                return false;
        }
    }

    // K / F9 (htop's kill keys; k moves up here): asks before deleting the selected flow's
    // conntrack entry.
    void ask_delete() {
        const table::FlowRow* row =
            model_.settings().tab == Tab::flows ? model_.selected_flow() : nullptr;
        if (!row) {
            ui_.status = "select a flow in the Flows tab to delete its conntrack entry";
            return;
        }
        if (!hooks_.delete_flow) {
            ui_.status =
                options_.all_netns
                    ? "deleting entries needs one namespace (--netns NAME), not --all-netns"
                    : "cannot delete: no conntrack netlink socket";
            return;
        }
        const auto latest = hub_.latest();
        if (auto why = delete_refusal(*row, model_.paused(), latest.get()); !why.empty()) {
            ui_.status = "not deleted: " + why;
            return;
        }
        delete_target_ = row->ct;
        ui_.confirm = "Delete the conntrack entry of " + flow_summary(row->ct) +
                      "?\ny: delete (this does not block the hosts: the kernel forgets the "
                      "state, their next packet starts anew)  any other key: keep it";
    }

    void handle_confirm_key(int ch) {
        if (ch == KEY_RESIZE || ch == KEY_MOUSE) return;  // not an answer: the question stays
        ui_.confirm.clear();
        if (ch != 'y' && ch != 'Y') {
            ui_.status = "not deleted";
            return;
        }
        const int err = hooks_.delete_flow(delete_target_);
        ui_.status = delete_outcome(err) + ": " + flow_summary(delete_target_);
    }

    void handle_key(int ch) {
        if (!ui_.confirm.empty()) return handle_confirm_key(ch);
        if (ui_.prompt) return handle_prompt_key(ch);
        if (ui_.help) {
            ui_.help = false;
            return;
        }
        ui_.status.clear();
        auto& s = model_.settings();
        if (s.tab == Tab::alerts && handle_alert_key(ch)) return;
        switch (ch) {
            case 'q':
            case KEY_F(10):
                quit_ = true;
                break;
            case '?':
            case KEY_F(1):
            case 'h':
                ui_.help = true;
                break;
            case KEY_UP:
            case 'k':
                model_.move_selection(-1, page());
                break;
            case KEY_DOWN:
            case 'j':
                model_.move_selection(1, page());
                break;
            case KEY_PPAGE:
                model_.move_selection(-static_cast<long>(page()), page());
                break;
            case KEY_NPAGE:
                model_.move_selection(static_cast<long>(page()), page());
                break;
            case KEY_HOME:
                model_.select_first();
                break;
            case KEY_END:
                model_.select_last();
                break;
            case '<':
                cycle_sort(-1);
                break;
            case '>':
            case KEY_F(6):
                cycle_sort(1);
                break;
            case 'r':
                s.reverse = !s.reverse;
                break;
            case '/':
                ui_.prompt = true;
                ui_.prompt_text = model_.filter_text();
                break;
            case 27:
                model_.set_filter("", nullptr);
                ui_.detail = false;
                break;
            case ' ':
            case 'p':
                model_.set_paused(!model_.paused());
                if (!model_.paused()) model_.offer(hub_.latest());
                break;
            case '\n':
            case '\r':
            case KEY_ENTER:
                if (const Group* g = model_.selected_group()) {
                    if (g->filter.empty()) {
                        // Zones and unknown states: the filter language has no term for them.
                        ui_.status = "no filter shows the flows of " + g->key;
                        break;
                    }
                    model_.set_filter(g->filter, nullptr);
                    s.tab = Tab::flows;
                    ui_.status = "flows of " + g->key;
                } else {
                    ui_.detail = !ui_.detail;
                }
                break;
            case 'K':
            case KEY_F(9):
                ask_delete();
                break;
            case '\t':
                s.tab = next_tab(s.tab);
                ui_.detail = false;
                break;
            case '!':
                s.tab = Tab::alerts;
                ui_.detail = false;
                break;
            case 'T':
                toggle_proto(6);
                break;
            case 'U':
                toggle_proto(17);
                break;
            case 'D':
                toggle_proto(33);
                break;
            case 'I':
                toggle_proto(1);
                toggle_proto(58);
                break;
            case 'S':
                toggle_proto(132);
                break;
            case 'a':
                s.active_only = !s.active_only;
                break;
            case 's':
                ui_.show_source = !ui_.show_source;
                break;
            case 'b':
                ui_.bits = !ui_.bits;
                break;
            case 'c':
                ui_.totals = !ui_.totals;
                break;
            case 'm':  // nethogs: one key through the units
                if (ui_.totals) {
                    ui_.totals = false;
                    ui_.bits = false;
                } else if (ui_.bits) {
                    ui_.totals = true;
                    ui_.bits = false;
                } else {
                    ui_.bits = true;
                }
                ui_.status = ui_.totals ? "cumulative bytes" : ui_.bits ? "bits/s" : "bytes/s";
                break;
            case '1':
                sort_by_window(RateWindow::s2);
                break;
            case '2':
                sort_by_window(RateWindow::s10);
                break;
            case '3':
                sort_by_window(RateWindow::s40);
                break;
            case 'n':
                ui_.names = !ui_.names;
                if (hooks_.set_dns) {
                    hooks_.set_dns(ui_.names);
                    ui_.status = ui_.names ? "host names on" : "addresses (no new DNS lookups)";
                } else {
                    ui_.status =
                        ui_.names ? "host names on (no resolver: started with -n)" : "addresses";
                }
                break;
            case 'N':
                ui_.port_numbers = !ui_.port_numbers;
                ui_.status = ui_.port_numbers ? "port numbers" : "service names";
                break;
            case 'W':
            case KEY_F(2):
                save_settings();
                break;
            case 'B':
                ui_.bars = !ui_.bars;
                break;
            case 'L':
                ui_.log_bars = !ui_.log_bars;
                break;
            case 'w':
                s.window = s.window == RateWindow::s40
                               ? RateWindow::tick
                               : static_cast<RateWindow>(static_cast<int>(s.window) + 1);
                ui_.status = std::string("rates over ") + rate_window_name(s.window);
                break;
            case KEY_MOUSE: {
                MEVENT ev;
                if (getmouse(&ev) != OK) break;
                if (ev.bstate & BUTTON4_PRESSED)
                    model_.move_selection(-3, page());
                else if (ev.bstate & BUTTON5_PRESSED)
                    model_.move_selection(3, page());
                else if (ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED)) {
                    const long line = static_cast<long>(model_.first_line()) + (ev.y - 4);
                    if (ev.y >= 4)
                        model_.move_selection(line - static_cast<long>(model_.selected()), page());
                }
                break;
            }
            // NOLINTNEXTLINE(bugprone-branch-clone): named for the reader, like default.
            case KEY_RESIZE:
                break;  // the next render uses the new size
            default:
                break;
        }
    }

    const table::SnapshotHub& hub_;
    Options options_;
    TopHooks hooks_;
    ViewModel model_;
    enrich::LeaseBook leases_;
    AddressWatch address_watch_;
    UiState ui_;
    bool quit_ = false;
    long max_frames_ = 0;
    ct::FlowRecord delete_target_;  // the entry the open confirmation asks about
};

}  // namespace

int run_top(const table::SnapshotHub& hub, const Options& options, const TopHooks& hooks) {
    TopView view(hub, options, hooks);
    return view.run();
}

}  // namespace flowtop::ui
