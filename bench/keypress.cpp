// Keypress to frame at a large table: the view model and renderer of the live view, drawing
// through real ncurses into a pseudo-terminal (a thread drains it like a terminal emulator).
// Each "keypress" changes the view (sort column, reverse, filter, page down) and the time runs
// until doupdate() has written the frame's last byte.
//   keypress [--flows N] [--rounds R]
#include <curses.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/ui/top_renderer.hpp"

using namespace flowtop;

namespace {

class PtyTerminal final : public ui::Terminal {
  public:
    PtyTerminal(std::FILE* out, std::FILE* in) {
        screen_ = newterm("xterm-256color", out, in);
        set_term(screen_);
        resizeterm(50, 160);
    }
    ~PtyTerminal() override {
        endwin();
        delscreen(screen_);
    }
    int width() const override { return COLS; }
    int height() const override { return LINES; }
    void begin_frame() override { erase(); }
    void put(int y, int x, std::string_view t, ui::Style s) override {
        if (s == ui::Style::selected) attron(A_REVERSE);
        mvaddnstr(y, x, t.data(), static_cast<int>(t.size()));
        attroff(A_REVERSE);
    }
    void restyle(int y, int x, int n, ui::Style) override {
        mvchgat(y, x, n, A_REVERSE, 0, nullptr);
    }
    void end_frame() override {
        wnoutrefresh(stdscr);
        doupdate();
    }

  private:
    SCREEN* screen_;
};

table::SnapshotPtr synthetic(std::size_t n) {
    auto s = std::make_shared<table::Snapshot>();
    auto pool = std::make_shared<StringPool>();
    s->strings = pool;
    s->stats.seq = 1;
    s->stats.time_ns = 1'800'000'000'000'000'000ull;
    for (std::size_t i = 0; i < n; ++i) {
        table::FlowRow r{};
        r.ct.id = static_cast<std::uint32_t>(i + 1);
        r.ct.family = Family::ipv4;
        r.ct.proto = i % 5 == 0 ? IPPROTO_UDP : IPPROTO_TCP;
        r.ct.tcp_state = 3;
        std::uint32_t src = htonl((198u << 24) | (51u << 16) | (100u << 8) | (i % 250));
        std::uint32_t dst = htonl((203u << 24) | (113u << 8) | ((i / 250) % 250));
        r.ct.orig.src = Addr::v4(src);
        r.ct.orig.dst = Addr::v4(dst);
        r.ct.orig.sport = static_cast<std::uint16_t>(1024 + i % 60000);
        r.ct.orig.dport = static_cast<std::uint16_t>(i % 7 ? 443 : 22);
        r.ct.has_counters = true;
        r.ct.orig_counters = {i % 977, (i * 7919) % 10'000'000};
        r.ct.reply_counters = {i % 311, (i * 104729) % 10'000'000};
        r.rate_known = true;
        r.orig_rate = static_cast<double>((i * 31) % 100'000);
        r.reply_rate = static_cast<double>((i * 17) % 50'000);
        r.first_seen_ns = s->stats.time_ns - (i % 3600) * 1'000'000'000ull;
        s->rows.push_back(r);
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t flows = 100'000;
    int rounds = 40;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::string(argv[i]) == "--flows") flows = std::stoul(argv[i + 1]);
        if (std::string(argv[i]) == "--rounds") rounds = std::stoi(argv[i + 1]);
    }
    int master = -1, slave = -1;
    winsize ws{50, 160, 0, 0};
    if (openpty(&master, &slave, nullptr, nullptr, &ws) != 0) {
        std::perror("openpty");
        return 1;
    }
    std::atomic<bool> done{false};
    std::atomic<long> drained{0};
    std::thread reader([&] {
        char buf[65536];
        while (!done) {
            pollfd p{master, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            ssize_t n = read(master, buf, sizeof buf);
            if (n > 0) drained += n;
        }
    });
    std::FILE* out = fdopen(dup(slave), "w");
    std::FILE* in = fdopen(dup(slave), "r");
    std::vector<double> ms;
    {
        PtyTerminal term(out, in);
        ui::ViewModel model;
        ui::UiState state;
        auto snap = synthetic(flows);
        state.summary.update(*snap);
        model.offer(snap);
        ui::render(term, model, state);  // first frame
        const auto& keys = ui::sort_keys();
        for (int r = 0; r < rounds; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            switch (r % 4) {  // the keys a person presses: > r / PgDn
                case 0:
                    model.settings().sort = keys[static_cast<std::size_t>(r / 4) % keys.size()];
                    break;
                case 1:
                    model.settings().reverse = !model.settings().reverse;
                    break;
                case 2:
                    model.set_filter(r % 8 == 2 ? "port:443 and not proto:udp" : "", nullptr);
                    break;
                case 3:
                    model.move_selection(44, 44);
                    break;
            }
            ui::render(term, model, state);
            ms.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count());
            if (std::getenv("KEYPRESS_TRACE"))
                std::fprintf(stderr, "round %d kind %d sort %s: %.1f ms\n", r, r % 4,
                             ui::sort_key_name(model.settings().sort), ms.back());
        }
    }
    done = true;
    reader.join();
    std::fclose(out);
    std::fclose(in);
    close(slave);
    close(master);
    std::sort(ms.begin(), ms.end());
    double sum = 0;
    for (double v : ms) sum += v;
    std::printf("flows %zu, %d keypresses (sort column, reverse, filter, page down)\n", flows,
                rounds);
    std::printf("keypress to frame: median %.1f ms, p95 %.1f ms, max %.1f ms, mean %.1f ms\n",
                ms[ms.size() / 2], ms[ms.size() * 95 / 100], ms.back(),
                sum / static_cast<double>(ms.size()));
    std::printf("bytes written to the terminal: %ld\n", drained.load());
    return 0;
}
