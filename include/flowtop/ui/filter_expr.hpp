#pragma once
// The filter language of the prompt, --filter and batch mode:
//   free text                 matches any shown field (case-insensitive substring)
//   host:NAME|ADDR|CIDR       either end, by name (substring) or address/prefix
//   port:N | port:N-M | port:NAME   either port, or the service name
//   proto: family: state: proc: user: cc: netns: dir:in|out|fwd
//   nat:snat|dnat|both|none   what NAT rewrote (snat and dnat include both)
//   and, or, not, ( ) ; juxtaposition means and
// Parsing reports an error with the column where it went wrong.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/util/addr.hpp"
#include "flowtop/util/local_addresses.hpp"

namespace flowtop::ui {

// Limits that keep a hostile or generated filter from exhausting the stack or the CPU: deeper
// nesting or a longer text is an error at its column, never a crash.
inline constexpr std::size_t k_max_filter_depth = 100;      // levels of '(' and 'not'
inline constexpr std::size_t k_max_filter_length = 262144;  // characters (20,000 terms fit)

struct FilterError {
    std::string message;
    std::size_t column = 0;  // 0-based position in the expression
};

// What "local" means for dir: the addresses of the watched namespace, the same set the process
// attributor decides "forwarded" by.
using LocalAddresses = flowtop::LocalAddresses;

class FilterExpr {
  public:
    struct Node;
    FilterExpr();
    ~FilterExpr();
    FilterExpr(FilterExpr&&) noexcept;
    FilterExpr& operator=(FilterExpr&&) noexcept;
    FilterExpr(const FilterExpr&);
    FilterExpr& operator=(const FilterExpr&);

    // Throws nothing: an invalid expression yields the error instead.
    static FilterExpr parse(std::string_view text, FilterError* error);

    bool empty() const noexcept { return !root_; }
    const std::string& text() const noexcept { return text_; }
    bool matches(const table::Snapshot& snap, const table::FlowRow& row,
                 const LocalAddresses* local = nullptr) const;

  private:
    std::shared_ptr<const Node> root_;
    std::string text_;
};

}  // namespace flowtop::ui
