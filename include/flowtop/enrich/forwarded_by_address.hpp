#pragma once
// Without process attribution (--no-proc) nothing looks for sockets, but whether a flow is
// forwarded is still known from its addresses alone: neither its client nor its server (see
// FlowEnds) is this namespace's. This hook decides that for each new flow, so JSON `forwarded`
// is true or false there too rather than null forever. One namespace only (not --all-netns,
// where each source has its own addresses).
#include "flowtop/table/tick.hpp"
#include "flowtop/util/local_addresses.hpp"

namespace flowtop::enrich {

class ForwardedByAddress final : public table::TickHook {
  public:
    explicit ForwardedByAddress(LocalAddresses local) : local_(std::move(local)) {}
    void on_tick(table::TickContext& tick) override;

  private:
    LocalAddresses local_;
};

}  // namespace flowtop::enrich
