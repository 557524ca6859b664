#include "flowtop/ui/top_view.hpp"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <cstring>

#include "flowtop/ui/top_renderer.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/signals.hpp"

// Last: curses defines macros (scroll, erase, ...) that would clash with names above.
#include <curses.h>

namespace flowtop::ui {
namespace {

// What a crash must undo, prepared before the screen is taken: async-signal-safe to apply.
termios g_saved_termios{};
bool g_have_termios = false;

void restore_terminal_from_signal() noexcept {
    static const char k_reset[] = "\033[?1000l\033[?1049l\033[?25h\033[0m\r\n";
    [[maybe_unused]] auto n = write(STDOUT_FILENO, k_reset, sizeof k_reset - 1);
    if (g_have_termios) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
}

class NcursesTerminal final : public Terminal {
public:
    NcursesTerminal() {
        g_have_termios = tcgetattr(STDIN_FILENO, &g_saved_termios) == 0;
        signals::set_terminal_restore(restore_terminal_from_signal);
        std::setlocale(LC_ALL, "");
        if (!initscr()) throw Error("cannot start the terminal (is TERM set?)");
        cbreak();
        noecho();
        nonl();
        keypad(stdscr, TRUE);
        nodelay(stdscr, TRUE);
        set_escdelay(25);
        curs_set(0);
        mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED, nullptr);
        colors_ = has_colors() && !std::getenv("NO_COLOR");
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
        signals::set_terminal_restore(nullptr);
    }

    int width() const override { return COLS; }
    int height() const override { return LINES; }
    void begin_frame() override { erase(); }
    void put(int y, int x, std::string_view text, Style style) override {
        attr_t a = attr_of(style);
        attron(a);
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
            case Style::header: return 2;
            case Style::error: return 3;
            case Style::bar: return 4;
            case Style::paused: return 5;
            case Style::title: return 1;
            default: return 0;
        }
    }
    attr_t attr_of(Style s) const {
        attr_t a = A_NORMAL;
        switch (s) {
            case Style::title: a = A_BOLD; break;
            case Style::header: a = colors_ ? A_NORMAL : A_REVERSE; break;
            case Style::selected: a = A_REVERSE; break;
            case Style::dim: a = A_DIM; break;
            case Style::error: a = A_BOLD; break;
            case Style::bar: a = colors_ ? A_NORMAL : A_UNDERLINE; break;
            case Style::closed: a = A_DIM; break;
            case Style::paused: a = A_BOLD; break;
            case Style::normal: break;
        }
        return a | COLOR_PAIR(pair_of(s));
    }
    bool colors_ = false;
};

class TopView {
public:
    TopView(const table::SnapshotHub& hub, const Options& o)
        : hub_(hub), model_(LocalAddresses::of_current_namespace()) {
        auto& s = model_.settings();
        s.command_line = FlowFilter(o);
        ui_.show_source = o.show_source;
        ui_.bits = o.bits;
        if (!o.sort.empty()) {
            auto key = parse_sort_key(o.sort);
            if (!key) throw UsageError("unknown sort column '" + o.sort + "'");
            s.sort = *key;
        }
        if (!o.filter.empty()) {
            FilterError e;
            if (!model_.set_filter(o.filter, &e))
                throw UsageError("--filter: " + e.message + " (at column " + std::to_string(e.column + 1) + ")");
        }
        max_frames_ = o.count.value_or(0);
    }

    int run() {
        NcursesTerminal term;
        bool dirty = true;
        std::uint64_t last_seq = 0;
        long frames = 0;
        while (!quit_) {
            pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {signals::wakeup_fd(), POLLIN, 0}};
            poll(fds, 2, 50);
            if (signals::pending_exit_signal()) break;
            for (int ch; (ch = getch()) != ERR;) {
                handle_key(ch);
                dirty = true;
            }
            if (auto snap = hub_.latest(); snap && snap->stats.seq != last_seq) {
                last_seq = snap->stats.seq;
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
        long i = (it - keys.begin() + step + static_cast<long>(keys.size())) % static_cast<long>(keys.size());
        s.sort = keys[static_cast<std::size_t>(i)];
        ui_.status = std::string("sorted by ") + sort_key_name(s.sort);
    }

    void toggle_proto(std::uint8_t p) {
        auto& h = model_.settings().hidden_protos;
        auto it = std::find(h.begin(), h.end(), p);
        if (it == h.end()) h.push_back(p);
        else h.erase(it);
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

    void handle_key(int ch) {
        if (ui_.prompt) return handle_prompt_key(ch);
        if (ui_.help) {
            ui_.help = false;
            return;
        }
        ui_.status.clear();
        auto& s = model_.settings();
        switch (ch) {
            case 'q': case KEY_F(10): quit_ = true; break;
            case '?': case KEY_F(1): case 'h': ui_.help = true; break;
            case KEY_UP: case 'k': model_.move_selection(-1, page()); break;
            case KEY_DOWN: case 'j': model_.move_selection(1, page()); break;
            case KEY_PPAGE: model_.move_selection(-static_cast<long>(page()), page()); break;
            case KEY_NPAGE: model_.move_selection(static_cast<long>(page()), page()); break;
            case KEY_HOME: model_.select_first(); break;
            case KEY_END: model_.select_last(); break;
            case '<': cycle_sort(-1); break;
            case '>': case KEY_F(6): cycle_sort(1); break;
            case 'r': s.reverse = !s.reverse; break;
            case '/':
                ui_.prompt = true;
                ui_.prompt_text = model_.filter_text();
                break;
            case 27: model_.set_filter("", nullptr); ui_.detail = false; break;
            case ' ': case 'p':
                model_.set_paused(!model_.paused());
                if (!model_.paused()) model_.offer(hub_.latest());
                break;
            case '\n': case '\r': case KEY_ENTER:
                if (const Group* g = model_.selected_group()) {
                    model_.set_filter(g->filter, nullptr);
                    s.tab = Tab::flows;
                    ui_.status = "flows of " + g->key;
                } else {
                    ui_.detail = !ui_.detail;
                }
                break;
            case '\t':
                s.tab = static_cast<Tab>((static_cast<int>(s.tab) + 1) % 4);
                ui_.detail = false;
                break;
            case 'T': toggle_proto(6); break;
            case 'U': toggle_proto(17); break;
            case 'D': toggle_proto(33); break;
            case 'I': toggle_proto(1); toggle_proto(58); break;
            case 'S': toggle_proto(132); break;
            case 'a': s.active_only = !s.active_only; break;
            case 's': ui_.show_source = !ui_.show_source; break;
            case 'b': ui_.bits = !ui_.bits; break;
            case 'c': ui_.totals = !ui_.totals; break;
            case 'B': ui_.bars = !ui_.bars; break;
            case 'L': ui_.log_bars = !ui_.log_bars; break;
            case 'w':
                s.window = s.window == RateWindow::s40 ? RateWindow::tick
                                                       : static_cast<RateWindow>(static_cast<int>(s.window) + 1);
                ui_.status = std::string("rates over ") + rate_window_name(s.window);
                break;
            case KEY_MOUSE: {
                MEVENT ev;
                if (getmouse(&ev) != OK) break;
                if (ev.bstate & BUTTON4_PRESSED) model_.move_selection(-3, page());
                else if (ev.bstate & BUTTON5_PRESSED) model_.move_selection(3, page());
                else if (ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED)) {
                    const long line = static_cast<long>(model_.first_line()) + (ev.y - 4);
                    if (ev.y >= 4) model_.move_selection(line - static_cast<long>(model_.selected()), page());
                }
                break;
            }
            case KEY_RESIZE: break;  // the next render uses the new size
            default: break;
        }
    }

    const table::SnapshotHub& hub_;
    ViewModel model_;
    UiState ui_;
    bool quit_ = false;
    long max_frames_ = 0;
};

}  // namespace

int run_top(const table::SnapshotHub& hub, const Options& options) {
    TopView view(hub, options);
    return view.run();
}

}  // namespace flowtop::ui
