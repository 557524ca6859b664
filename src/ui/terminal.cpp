#include "flowtop/ui/terminal.hpp"

#include <algorithm>

namespace flowtop::ui {

namespace {
bool continuation(unsigned char c) { return (c & 0xC0) == 0x80; }
}  // namespace

std::size_t display_width(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if (!continuation(c)) ++n;
    return n;
}

std::string fit(std::string_view s, std::size_t width, bool right) {
    std::string out;
    std::size_t cols = 0;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t len = 1;
        while (i + len < s.size() && continuation(static_cast<unsigned char>(s[i + len]))) ++len;
        if (cols + 1 > width) break;
        out.append(s.substr(i, len));
        ++cols;
        i += len;
    }
    std::string pad(width - cols, ' ');
    return right ? pad + out : out + pad;
}

void FakeTerminal::begin_frame() {
    cells_.assign(static_cast<std::size_t>(height_),
                  std::vector<Cell>(static_cast<std::size_t>(width_)));
}

void FakeTerminal::put(int y, int x, std::string_view s, Style style) {
    if (y < 0 || y >= height_) return;
    for (std::size_t i = 0; i < s.size() && x < width_;) {
        std::size_t len = 1;
        while (i + len < s.size() && continuation(static_cast<unsigned char>(s[i + len]))) ++len;
        if (x >= 0) cells_[y][x] = Cell{std::string(s.substr(i, len)), style};
        ++x;
        i += len;
    }
}

void FakeTerminal::restyle(int y, int x, int n, Style style) {
    if (y < 0 || y >= height_) return;
    for (int i = std::max(0, x); i < x + n && i < width_; ++i) cells_[y][i].style = style;
}

std::string FakeTerminal::line(int y) const {
    std::string out;
    for (const auto& c : cells_[y]) out += c.glyph;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::string FakeTerminal::text() const {
    std::string out;
    for (int y = 0; y < height_; ++y) out += line(y) + "\n";
    return out;
}

}  // namespace flowtop::ui
