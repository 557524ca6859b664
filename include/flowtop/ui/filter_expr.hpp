#pragma once
// The filter language of the prompt, --filter and batch mode:
//   free text                 matches any shown field (case-insensitive substring)
//   host:NAME|ADDR|CIDR       either end, by name (substring) or address/prefix
//   port:N | port:N-M | port:NAME   either port, or the service name
//   proto: family: state: proc: user: cc: netns: dir:in|out|fwd
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

namespace flowtop::ui {

struct FilterError {
    std::string message;
    std::size_t column = 0;  // 0-based position in the expression
};

// What "local" means for dir: — the addresses of the watched namespace.
struct LocalAddresses {
    std::vector<Addr> addrs;
    bool contains(const Addr& a) const noexcept;
    static LocalAddresses of_current_namespace();
};

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
