// The conntrack table's stats messages (GET_STATS and the per-CPU GET_STATS_CPU dump), built
// here byte by byte as the kernel writes them, and the pressure numbers derived from them.
#include "flowtop/ct/table_stats.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstring>
#include <utility>
#include <vector>

#include "flowtop/ui/table_pressure.hpp"

using namespace flowtop;

namespace {

// Appends one netlink message of `type` with big-endian u32 attributes.
void put_message(std::vector<std::byte>& out, std::uint16_t type, std::uint16_t flags,
                 std::uint16_t res_id,
                 const std::vector<std::pair<std::uint16_t, std::uint32_t>>& attrs) {
    std::vector<std::byte> msg(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
    for (auto [attr, value] : attrs) {
        nlattr a{};
        a.nla_type = attr;
        a.nla_len = NLA_HDRLEN + 4;
        const std::uint32_t be = htonl(value);
        const auto at = msg.size();
        msg.resize(at + NLA_ALIGN(a.nla_len));
        std::memcpy(msg.data() + at, &a, sizeof a);
        std::memcpy(msg.data() + at + NLA_HDRLEN, &be, 4);
    }
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(msg.size());
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    std::memcpy(msg.data(), &h, sizeof h);
    nfgenmsg g{};
    g.nfgen_family = AF_UNSPEC;
    g.res_id = htons(res_id);
    std::memcpy(msg.data() + NLMSG_HDRLEN, &g, sizeof g);
    out.insert(out.end(), msg.begin(), msg.end());
}

constexpr std::uint16_t ct_type(std::uint16_t msg) {
    return static_cast<std::uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msg);
}

void put_done(std::vector<std::byte>& out) {
    std::vector<std::byte> msg(NLMSG_HDRLEN + 4);
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(msg.size());
    h.nlmsg_type = NLMSG_DONE;
    h.nlmsg_flags = NLM_F_MULTI;
    std::memcpy(msg.data(), &h, sizeof h);
    out.insert(out.end(), msg.begin(), msg.end());
}

}  // namespace

TEST(TableStats, SumsThePerCpuCountersOfADump) {
    std::vector<std::byte> buf;
    put_message(buf, ct_type(IPCTNL_MSG_CT_GET_STATS_CPU), NLM_F_MULTI, 0,
                {{CTA_STATS_FOUND, 5},
                 {CTA_STATS_INVALID, 2},
                 {CTA_STATS_INSERT_FAILED, 1},
                 {CTA_STATS_DROP, 7},
                 {CTA_STATS_EARLY_DROP, 3},
                 {CTA_STATS_ERROR, 4},
                 {CTA_STATS_SEARCH_RESTART, 9},
                 {CTA_STATS_CLASH_RESOLVE, 100}});
    put_message(buf, ct_type(IPCTNL_MSG_CT_GET_STATS_CPU), NLM_F_MULTI, 1,
                {{CTA_STATS_FOUND, 10}, {CTA_STATS_DROP, 1}, {CTA_STATS_SEARCH_RESTART, 1}});
    put_done(buf);
    ct::TableStats stats;
    const auto r = ct::parse_table_stats(buf, stats);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.errors, 0u);
    EXPECT_EQ(stats.cpus, 2u);
    EXPECT_EQ(stats.counters, (ct::KernelCounters{15, 2, 1, 8, 3, 4, 10}));
}

TEST(TableStats, TakesCountAndMaxFromTheGlobalAnswer) {
    std::vector<std::byte> buf;
    put_message(buf, ct_type(IPCTNL_MSG_CT_GET_STATS), 0, 0,
                {{CTA_STATS_GLOBAL_ENTRIES, 1234}, {CTA_STATS_GLOBAL_MAX_ENTRIES, 262144}});
    ct::TableStats stats;
    auto r = ct::parse_table_stats(buf, stats);
    EXPECT_FALSE(r.done);  // the ACK is still to come
    EXPECT_EQ(stats.count, 1234u);
    EXPECT_EQ(stats.max, 262144u);
}

TEST(TableStats, CountsMalformedMessagesAndStopsAtAnError) {
    std::vector<std::byte> buf;
    // A counter with a 2-byte payload: malformed, skipped, nothing added.
    put_message(buf, ct_type(IPCTNL_MSG_CT_GET_STATS_CPU), NLM_F_MULTI, 0, {{CTA_STATS_DROP, 5}});
    auto* a = reinterpret_cast<nlattr*>(buf.data() + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
    a->nla_len = NLA_HDRLEN + 2;
    std::vector<std::byte> err(NLMSG_HDRLEN + sizeof(nlmsgerr));
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(err.size());
    h.nlmsg_type = NLMSG_ERROR;
    nlmsgerr e{};
    e.error = -EPERM;
    std::memcpy(err.data(), &h, sizeof h);
    std::memcpy(err.data() + NLMSG_HDRLEN, &e, sizeof e);
    buf.insert(buf.end(), err.begin(), err.end());
    ct::TableStats stats;
    const auto r = ct::parse_table_stats(buf, stats);
    EXPECT_EQ(r.errors, 1u);
    EXPECT_EQ(r.netlink_error, EPERM);
    EXPECT_EQ(stats.counters.drop, 0u);
    EXPECT_EQ(stats.cpus, 0u);
}

TEST(TablePressure, WarnsAtNinetyPercentAndWhenDropsRise) {
    table::FrameStats s;
    EXPECT_EQ(ui::ct_use_text(s), "ct ?");
    EXPECT_EQ(ui::ct_warning(s), "");
    s.ct_known = true;
    s.ct_count = 1234;
    s.ct_max = 262144;
    s.ct_fullest = 1234.0 / 262144;
    EXPECT_EQ(ui::ct_use_text(s), "ct 1234/262144");
    EXPECT_EQ(ui::ct_warning(s), "");
    s.ct_fullest = 0.93;
    EXPECT_EQ(ui::ct_warning(s), "CT 93% FULL");
    s.ct_dropping = true;
    EXPECT_EQ(ui::ct_warning(s), "CT 93% FULL DROPS");
    s.ct_fullest = 0.5;
    EXPECT_EQ(ui::ct_warning(s), "CT DROPS");
    s.ct_counters.early_drop = 17;
    const auto json = ui::ct_json_members(s);
    EXPECT_NE(json.find("\"ct_count\":1234,\"ct_max\":262144"), std::string::npos) << json;
    EXPECT_NE(json.find("\"early_drop\":17"), std::string::npos) << json;
}

TEST(TablePressure, ConsumersRankSourcesAndCountUnrepliedApart) {
    table::Snapshot snap;
    snap.strings = std::make_shared<StringPool>();
    const auto row = [&](const char* src, std::uint8_t proto, std::uint32_t status) {
        table::FlowRow r{};
        r.ct.family = Family::ipv4;
        r.ct.proto = proto;
        r.ct.has_status = true;
        r.ct.status = status;
        r.ct.orig.src = parse_addr(src)->first;
        snap.rows.push_back(r);
    };
    for (int i = 0; i < 3; ++i) row("192.0.2.11", IPPROTO_UDP, 0x8);  // CONFIRMED only
    row("192.0.2.12", IPPROTO_UDP, 0x2 | 0x4 | 0x8);                  // SEEN_REPLY, ASSURED
    std::vector<const table::FlowRow*> rows;
    for (const auto& r : snap.rows) rows.push_back(&r);
    const auto consumers = ui::table_consumers(snap, rows);
    ASSERT_GE(consumers.size(), 4u);
    EXPECT_STREQ(consumers[0].by, "source");
    EXPECT_EQ(consumers[0].key, "192.0.2.11");
    EXPECT_EQ(consumers[0].entries, 3u);
    EXPECT_EQ(consumers[0].filter, "host:192.0.2.11");
    EXPECT_EQ(consumers[2].key, "UNREPLIED");
    EXPECT_EQ(consumers[2].entries, 3u);
    EXPECT_EQ(consumers[3].key, "ASSURED");
    // Enter on a state row shows its flows: the status words have a filter term now.
    EXPECT_EQ(consumers[2].filter, "status:unreplied and not proto:tcp");
    EXPECT_EQ(consumers[3].filter, "status:assured and not proto:tcp");
}
