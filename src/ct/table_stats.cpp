#include "flowtop/ct/table_stats.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

namespace flowtop::ct {

std::uint64_t& counter_at(KernelCounters& c, std::size_t i) noexcept {
    switch (i) {
        case 0:
            return c.found;
        case 1:
            return c.invalid;
        case 2:
            return c.insert_failed;
        case 3:
            return c.drop;
        case 4:
            return c.early_drop;
        case 5:
            return c.error;
        default:
            return c.search_restart;
    }
}

std::uint64_t counter_at(const KernelCounters& c, std::size_t i) noexcept {
    return counter_at(const_cast<KernelCounters&>(c), i);
}

namespace {

// The CTA_STATS_* attribute of each counter, in KernelCounters order.
constexpr std::uint16_t k_counter_attrs[k_kernel_counter_count] = {
    CTA_STATS_FOUND,      CTA_STATS_INVALID, CTA_STATS_INSERT_FAILED,  CTA_STATS_DROP,
    CTA_STATS_EARLY_DROP, CTA_STATS_ERROR,   CTA_STATS_SEARCH_RESTART,
};

// The kernel writes these as big-endian 32-bit values.
bool be32_of(const nlattr* a, std::uint64_t& out) noexcept {
    if (mnl_attr_get_payload_len(a) < sizeof(std::uint32_t)) return false;
    out = ntohl(mnl_attr_get_u32(a));
    return true;
}

// libmnl's mnl_attr_for_each casts from void*, which C++ refuses.
template <typename F>
void for_each_attr(const nlmsghdr* nlh, F f) noexcept {
    const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
         mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)));
         a = mnl_attr_next(a))
        f(a);
}

bool add_cpu(const nlmsghdr* nlh, TableStats& out) noexcept {
    KernelCounters c;
    bool ok = true;
    for_each_attr(nlh, [&](const nlattr* a) {
        const auto type = mnl_attr_get_type(a);
        for (std::size_t i = 0; i < k_kernel_counter_count; ++i) {
            if (type != k_counter_attrs[i]) continue;
            std::uint64_t v = 0;
            ok = be32_of(a, v) && ok;
            counter_at(c, i) = v;
        }
    });
    if (!ok) return false;
    for (std::size_t i = 0; i < k_kernel_counter_count; ++i)
        counter_at(out.counters, i) += counter_at(c, i);
    ++out.cpus;
    return true;
}

bool set_global(const nlmsghdr* nlh, TableStats& out) noexcept {
    bool ok = true;
    for_each_attr(nlh, [&](const nlattr* a) {
        const auto type = mnl_attr_get_type(a);
        if (type == CTA_STATS_GLOBAL_ENTRIES) ok = be32_of(a, out.count) && ok;
        if (type == CTA_STATS_GLOBAL_MAX_ENTRIES) ok = be32_of(a, out.max) && ok;
    });
    return ok;
}

}  // namespace

StatsParseResult parse_table_stats(std::span<const std::byte> buf, TableStats& out) noexcept {
    StatsParseResult result;
    int len = static_cast<int>(buf.size());
    auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_type == NLMSG_DONE) {
            result.done = true;
            continue;
        }
        if (nlh->nlmsg_type == NLMSG_ERROR) {
            if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
                ++result.errors;
                continue;
            }
            const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (e->error != 0) result.netlink_error = -e->error;
            result.done = true;  // an ACK or a refusal ends the request
            continue;
        }
        if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK ||
            nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) {
            ++result.errors;
            continue;
        }
        bool ok = false;
        switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
            case IPCTNL_MSG_CT_GET_STATS_CPU:
                ok = add_cpu(nlh, out);
                break;
            case IPCTNL_MSG_CT_GET_STATS:
                ok = set_global(nlh, out);
                break;
            default:
                break;
        }
        if (!ok) ++result.errors;
    }
    return result;
}

}  // namespace flowtop::ct
