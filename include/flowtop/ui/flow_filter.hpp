#pragma once
// Which flows to show: the family and protocol flags of the command line (-4 -6 -T -U -D -I -S).
#include <cstdint>
#include <vector>

#include "flowtop/table/flow_row.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

class FlowFilter {
  public:
    FlowFilter() = default;
    explicit FlowFilter(const Options& options);
    bool matches(const table::FlowRow& row) const noexcept;
    friend bool operator==(const FlowFilter&, const FlowFilter&) = default;

  private:
    bool only_ipv4_ = false;
    bool only_ipv6_ = false;
    std::vector<std::uint8_t> protocols_;
};

}  // namespace flowtop::ui
