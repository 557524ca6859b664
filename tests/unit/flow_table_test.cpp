#include "flowtop/table/flow_table.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

using namespace flowtop;
using ct::FlowRecord;
using ct::MsgKind;
using table::FlowRow;
using table::FlowTable;

namespace {
FlowRecord record(std::uint32_t id, MsgKind kind, std::uint64_t ob = 0, std::uint64_t rb = 0,
                  bool counters = true) {
    FlowRecord r;
    r.id = id;
    r.kind = kind;
    r.proto = IPPROTO_UDP;
    r.orig.src = Addr::v4(0x020064c6);  // 198.100.0.2 in network order, any value will do
    r.has_counters = counters;
    r.orig_counters = {ob / 100, ob};
    r.reply_counters = {rb / 100, rb};
    return r;
}
std::vector<FlowRow> rows(const FlowTable& t) { return {t.rows().begin(), t.rows().end()}; }
}  // namespace

TEST(FlowTable, NewThenDumpGivesExactFirstRate) {
    FlowTable t;
    constexpr std::uint64_t s = 1'000'000'000;
    t.apply(record(1, MsgKind::created, 0, 0, false), 1 * s);
    t.tick(1 * s);  // no counters yet: rate unknown
    EXPECT_FALSE(t.find(1)->rate_known);
    t.begin_sweep();
    t.apply(record(1, MsgKind::dump, 5000, 100), 1 * s + s / 2);
    t.end_sweep(2 * s);
    t.tick(2 * s);
    const FlowRow* r = t.find(1);
    ASSERT_TRUE(r->rate_known);
    // Born while we listened: it started from zero, so the whole count is this tick's.
    EXPECT_DOUBLE_EQ(r->orig_rate, 10000.0);
    EXPECT_DOUBLE_EQ(r->reply_rate, 200.0);
}

TEST(FlowTable, FlowSeenFirstInADumpHasNoRateUntilTheSecondSample) {
    FlowTable t;
    constexpr std::uint64_t s = 1'000'000'000;
    t.begin_sweep();
    t.apply(record(7, MsgKind::dump, 1000, 1000), 1 * s);
    t.end_sweep(1 * s);
    t.tick(1 * s);
    EXPECT_FALSE(t.find(7)->rate_known);
    t.tick(2 * s);  // a tick without a new sample keeps what is known
    EXPECT_FALSE(t.find(7)->rate_known);
    t.begin_sweep();
    t.apply(record(7, MsgKind::dump, 3000, 1500), 3 * s);  // two seconds after the first sample
    t.end_sweep(3 * s);
    t.tick(3 * s);
    EXPECT_TRUE(t.find(7)->rate_known);
    EXPECT_DOUBLE_EQ(t.find(7)->orig_rate, 1000.0);
    EXPECT_DOUBLE_EQ(t.find(7)->reply_rate, 250.0);
}

TEST(FlowTable, NewbornFlowRateCountsOverItsTick) {
    FlowTable t;
    constexpr std::uint64_t s = 1'000'000'000;
    t.tick(10 * s);
    t.apply(record(2, MsgKind::created, 0, 0, false), 10 * s + 900'000'000);  // late in the tick
    t.apply(record(2, MsgKind::dump, 3000, 0), 11 * s);
    t.tick(11 * s);
    EXPECT_DOUBLE_EQ(t.find(2)->orig_rate, 3000.0);  // 3000 bytes in this one-second tick
}

TEST(FlowTable, EventsKeepCountersTheyDoNotCarry) {
    FlowTable t;
    t.apply(record(3, MsgKind::dump, 900, 90), 1);
    auto upd = record(3, MsgKind::updated, 0, 0, false);
    upd.proto = IPPROTO_TCP;
    upd.tcp_state = 3;
    t.apply(upd, 2);
    const FlowRow* r = t.find(3);
    ASSERT_TRUE(r->has_counters());
    EXPECT_EQ(r->ct.orig_counters.bytes, 900u);
    EXPECT_EQ(r->ct.tcp_state, 3);
}

TEST(FlowTable, DestroyShowsFinalCountersOnceThenLeaves) {
    FlowTable t;
    t.apply(record(5, MsgKind::created, 0, 0, false), 1);
    t.apply(record(5, MsgKind::destroyed, 4242, 21), 2);
    auto r = rows(t);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_TRUE(r[0].closed);
    EXPECT_TRUE(r[0].gone);
    EXPECT_EQ(r[0].ct.orig_counters.bytes, 4242u);
    t.drop_gone();
    EXPECT_TRUE(rows(t).empty());
    // A late duplicate DESTROY does not bring it back.
    t.apply(record(5, MsgKind::destroyed, 4242, 21), 3);
    EXPECT_TRUE(rows(t).empty());
}

TEST(FlowTable, FlowMissingFromACompleteDumpIsGone) {
    FlowTable t;
    t.begin_sweep();
    t.apply(record(1, MsgKind::dump, 10, 10), 1);
    t.apply(record(2, MsgKind::dump, 10, 10), 1);
    t.end_sweep(1);
    t.begin_sweep();
    t.apply(record(1, MsgKind::dump, 20, 20), 2);
    EXPECT_EQ(t.end_sweep(2), 1u);
    EXPECT_TRUE(t.find(2)->gone);
    EXPECT_FALSE(t.find(1)->gone);
    // The DESTROY read after the sweep still delivers the final counters.
    t.apply(record(2, MsgKind::destroyed, 77, 7), 3);
    EXPECT_EQ(t.find(2)->ct.orig_counters.bytes, 77u);
    t.drop_gone();
    EXPECT_EQ(t.find(2), nullptr);
    EXPECT_EQ(t.size(), 1u);
}

TEST(FlowTable, TcpTimeWaitIsClosedButStillListed) {
    FlowTable t;
    auto r = record(9, MsgKind::updated, 100, 100);
    r.proto = IPPROTO_TCP;
    r.tcp_state = 7;  // TIME_WAIT
    t.apply(r, 5);
    EXPECT_TRUE(t.find(9)->closed);
    EXPECT_FALSE(t.find(9)->gone);
    EXPECT_EQ(t.find(9)->closed_ns, 5u);
}

TEST(FlowTable, SlotsAreReusedAfterFlowsLeave) {
    FlowTable t;
    for (std::uint32_t round = 0; round < 3; ++round) {
        for (std::uint32_t i = 0; i < 1000; ++i)
            t.apply(record(round * 1000 + i, MsgKind::created), 1);
        for (std::uint32_t i = 0; i < 1000; ++i)
            t.apply(record(round * 1000 + i, MsgKind::destroyed, 1, 1), 2);
        t.drop_gone();
        EXPECT_EQ(t.size(), 0u);
    }
    t.apply(record(424242, MsgKind::created), 1);
    EXPECT_EQ(t.size(), 1u);
}

TEST(FlowTable, AveragesConvergeToASteadyRate) {
    FlowTable t;
    std::uint64_t bytes = 0;
    t.apply(record(1, MsgKind::created, 0, 0), 1'000'000'000);
    for (std::uint64_t i = 2; i < 200; ++i) {
        bytes += 1000;
        t.apply(record(1, MsgKind::dump, bytes, 0), i * 1'000'000'000);
        t.tick(i * 1'000'000'000);
    }
    const FlowRow* r = t.find(1);
    for (int w = 0; w < table::k_rate_windows; ++w) EXPECT_NEAR(r->orig_rate_avg[w], 1000.0, 1.0);
}
