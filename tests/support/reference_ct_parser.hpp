#pragma once
// libnetfilter_conntrack's reading of one conntrack message, as a reference for ct::Parser.
#include <linux/netlink.h>

#include "flowtop/ct/flow_record.hpp"

namespace flowtop::test {

// What flowtop's parser read before it walked the attributes itself; false when the message
// is not a conntrack one or lacks an address of either tuple.
bool reference_parse_message(const nlmsghdr* nlh, ct::FlowRecord& out);

}  // namespace flowtop::test
