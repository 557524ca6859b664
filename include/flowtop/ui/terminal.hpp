#pragma once
// Where the live view draws: a grid of cells with a few styles. The ncurses terminal and the
// fake one of the tests implement it; the renderer knows only this.
#include <string>
#include <string_view>
#include <vector>

namespace flowtop::ui {

enum class Style { normal, title, header, selected, dim, error, bar, closed, paused };

class Terminal {
  public:
    virtual ~Terminal() = default;
    virtual int width() const = 0;
    virtual int height() const = 0;
    virtual void begin_frame() = 0;                                          // blank the next frame
    virtual void put(int y, int x, std::string_view utf8, Style style) = 0;  // clipped to the grid
    virtual void end_frame() = 0;                                            // send what changed
    // Changes the style of n cells without changing their text (rate bars).
    virtual void restyle(int y, int x, int n, Style style) = 0;
};

// Columns a UTF-8 string takes (each code point one column: the view uses no wide glyphs).
std::size_t display_width(std::string_view utf8);
// Cuts or pads `utf8` to exactly `width` columns; right-aligns when `right`.
std::string fit(std::string_view utf8, std::size_t width, bool right = false);

// A terminal in memory, for tests: the text and style of every cell.
class FakeTerminal final : public Terminal {
  public:
    FakeTerminal(int width, int height) : width_(width), height_(height) { begin_frame(); }
    int width() const override { return width_; }
    int height() const override { return height_; }
    void resize(int width, int height) {
        width_ = width;
        height_ = height;
    }
    void begin_frame() override;
    void put(int y, int x, std::string_view utf8, Style style) override;
    void end_frame() override { ++frames_; }
    void restyle(int y, int x, int n, Style style) override;

    std::string line(int y) const;  // the row's text, trailing blanks removed
    std::string text() const;       // every row, joined by newlines
    Style style_at(int y, int x) const { return cells_[y][x].style; }
    int frames() const { return frames_; }

  private:
    struct Cell {
        std::string glyph = " ";
        Style style = Style::normal;
    };
    int width_, height_;
    std::vector<std::vector<Cell>> cells_;
    int frames_ = 0;
};

}  // namespace flowtop::ui
