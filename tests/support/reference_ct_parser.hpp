#pragma once
// libnetfilter_conntrack's reading of one conntrack message, as a reference for ct::Parser.
#include <linux/netlink.h>

#include <algorithm>
#include <cstddef>
#include <span>

#include "flowtop/ct/flow_record.hpp"

namespace flowtop::test {

// What flowtop's parser read before it walked the attributes itself; false when the message
// is not a conntrack one or lacks an address of either tuple.
bool reference_parse_message(const nlmsghdr* nlh, ct::FlowRecord& out);

// Calls fn(nlh, offset) for each whole netlink message of `buf`, bounded as ct::Parser's walk
// bounds them: a length shorter than a header or past the buffer ends the walk.
template <typename Fn>
void for_each_message(std::span<const std::byte> buf, Fn&& fn) {
    std::size_t offset = 0;
    while (buf.size() - offset >= sizeof(nlmsghdr)) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data() + offset);
        if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > buf.size() - offset) return;
        fn(nlh, offset);
        offset = std::min(buf.size(), offset + NLMSG_ALIGN(nlh->nlmsg_len));
    }
}

}  // namespace flowtop::test
