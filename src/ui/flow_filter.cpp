#include "flowtop/ui/flow_filter.hpp"

#include <algorithm>

namespace flowtop::ui {

FlowFilter::FlowFilter(const Options& o)
    : only_ipv4_(o.only_ipv4), only_ipv6_(o.only_ipv6), protocols_(o.protocols) {}

bool FlowFilter::matches(const table::FlowRow& row) const noexcept {
    if (only_ipv4_ && row.ct.family != Family::ipv4) return false;
    if (only_ipv6_ && row.ct.family != Family::ipv6) return false;
    if (!protocols_.empty() &&
        std::find(protocols_.begin(), protocols_.end(), row.ct.proto) == protocols_.end())
        return false;
    return true;
}

}  // namespace flowtop::ui
