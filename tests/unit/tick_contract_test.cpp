// The writer's per-tick contract: hooks see what changed (created, updated, ended), write only
// enrichment, get a bounded rolling pass, and the frame's totals survive departed flows.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <set>

#include "flowtop/table/flow_table.hpp"
#include "flowtop/table/tick.hpp"

using namespace flowtop;
using ct::FlowRecord;
using ct::MsgKind;
using table::FlowTable;

namespace {

constexpr std::uint64_t k_s = 1'000'000'000;

FlowRecord record(std::uint32_t id, MsgKind kind, std::uint64_t ob = 0, std::uint64_t rb = 0,
                  std::uint8_t proto = IPPROTO_UDP) {
    FlowRecord r;
    r.id = id;
    r.kind = kind;
    r.proto = proto;
    r.has_counters = true;
    r.orig_counters = {ob / 100 + 1, ob};
    r.reply_counters = {rb / 100 + 1, rb};
    return r;
}

std::set<ct::FlowKey> keys(std::span<const ct::FlowKey> s) { return {s.begin(), s.end()}; }

// Records what each tick handed it, and what it may write.
class RecordingHook : public table::TickHook {
  public:
    std::chrono::milliseconds period{0};
    std::vector<std::set<ct::FlowKey>> created, updated, ended;
    std::vector<std::vector<ct::FlowKey>> passes;
    StrId label = k_no_string;
    void on_tick(table::TickContext& tick) override {
        created.push_back(keys(tick.changes().created));
        updated.push_back(keys(tick.changes().updated));
        ended.push_back(keys(tick.changes().ended));
        passes.emplace_back(tick.pass_keys().begin(), tick.pass_keys().end());
        if (label == k_no_string) label = tick.strings().intern("tagged");
        for (const auto key : tick.changes().created)
            tick.enrich(key, [&](table::FlowEnrichment& e) { e.service = label; });
    }
    std::chrono::milliseconds full_pass_period() const noexcept override { return period; }
};

}  // namespace

TEST(TickContract, HooksSeeCreatedUpdatedAndEndedKeysOnly) {
    FlowTable table;
    StringPool strings;
    RecordingHook hook;
    table::TickHooks hooks;
    hooks.add(&hook);
    for (std::uint32_t id = 1; id <= 100; ++id) table.apply(record(id, MsgKind::created), 1);
    hooks.run(table, strings, 1 * k_s, std::chrono::milliseconds(1000));
    ASSERT_EQ(hook.created.back().size(), 100u);
    EXPECT_TRUE(hook.updated.back().empty());
    EXPECT_TRUE(hook.ended.back().empty());
    table.drop_gone();

    // Tick 2: counters of flow 7 move, flow 9 is destroyed, flow 11 re-read unchanged.
    table.apply(record(7, MsgKind::updated, 5000, 100), 2 * k_s);
    table.apply(record(9, MsgKind::destroyed), 2 * k_s);
    table.apply(record(11, MsgKind::dump), 2 * k_s);
    table.apply(record(101, MsgKind::created), 2 * k_s);
    hooks.run(table, strings, 3 * k_s, std::chrono::milliseconds(1000));
    EXPECT_EQ(hook.created.back(), std::set<ct::FlowKey>{101});
    EXPECT_EQ(hook.updated.back(), std::set<ct::FlowKey>{7});
    EXPECT_EQ(hook.ended.back(), std::set<ct::FlowKey>{9});
    table.drop_gone();

    // A quiet tick: nothing to look at.
    hooks.run(table, strings, 4 * k_s, std::chrono::milliseconds(1000));
    EXPECT_TRUE(hook.created.back().empty());
    EXPECT_TRUE(hook.updated.back().empty());
    EXPECT_TRUE(hook.ended.back().empty());
    // What the hook wrote stayed in its rows, and only there.
    EXPECT_EQ(table.find(1)->service, hook.label);
    EXPECT_EQ(table.find(101)->service, hook.label);
    EXPECT_EQ(table.find(9), nullptr);
}

TEST(TickContract, AFlowThatClosesAndLeavesIsEndedOnce) {
    FlowTable table;
    StringPool strings;
    RecordingHook hook;
    table::TickHooks hooks;
    hooks.add(&hook);
    auto tcp = record(5, MsgKind::created, 0, 0, IPPROTO_TCP);
    tcp.tcp_state = 3;  // ESTABLISHED
    table.apply(tcp, 1);
    hooks.run(table, strings, 1 * k_s, std::chrono::milliseconds(1000));
    tcp.kind = MsgKind::updated;
    tcp.tcp_state = 7;  // TIME_WAIT: closed
    table.apply(tcp, 2 * k_s);
    hooks.run(table, strings, 2 * k_s, std::chrono::milliseconds(1000));
    EXPECT_EQ(hook.ended.back(), std::set<ct::FlowKey>{5});
    tcp.kind = MsgKind::destroyed;
    table.apply(tcp, 3 * k_s);
    hooks.run(table, strings, 3 * k_s, std::chrono::milliseconds(1000));
    EXPECT_TRUE(hook.ended.back().empty()) << "a closed flow that leaves is not ended twice";
}

TEST(TickContract, RollingPassVisitsEveryRowOncePerPeriodInBoundedSlices) {
    FlowTable table;
    StringPool strings;
    RecordingHook hook;
    hook.period = std::chrono::milliseconds(10'000);
    table::TickHooks hooks;
    hooks.add(&hook);
    for (std::uint32_t id = 1; id <= 1000; ++id) table.apply(record(id, MsgKind::dump), 1);
    std::set<ct::FlowKey> seen;
    for (int tick = 1; tick <= 10; ++tick) {
        hooks.run(table, strings, static_cast<std::uint64_t>(tick) * k_s,
                  std::chrono::milliseconds(1000));
        EXPECT_LE(hook.passes.back().size(), 100u);  // a tenth of the rows a tick
        seen.insert(hook.passes.back().begin(), hook.passes.back().end());
    }
    EXPECT_EQ(seen.size(), 1000u);
    RecordingHook none;
    hooks.add(&none);
    hooks.run(table, strings, 11 * k_s, std::chrono::milliseconds(1000));
    EXPECT_TRUE(none.passes.back().empty());  // asked for no pass, gets none
}

TEST(TickContract, TotalsSinceStartKeepDepartedFlowsAndMatchASumOverRows) {
    FlowTable table;
    StringPool strings;
    RecordingHook hook;
    table::TickHooks hooks;
    hooks.add(&hook);
    for (std::uint32_t id = 1; id <= 50; ++id) table.apply(record(id, MsgKind::created), 1);
    hooks.run(table, strings, 1 * k_s, std::chrono::milliseconds(1000));
    table.drop_gone();
    for (std::uint32_t id = 1; id <= 50; ++id)
        table.apply(record(id, MsgKind::updated, id * 1000, id * 10), 2 * k_s);
    hooks.run(table, strings, 2 * k_s, std::chrono::milliseconds(1000));
    table.drop_gone();
    // Half of them leave; no reader looks at the frame in which they are shown as gone.
    for (std::uint32_t id = 1; id <= 25; ++id)
        table.apply(record(id, MsgKind::destroyed, id * 1000 + 1, id * 10), 3 * k_s);
    hooks.run(table, strings, 3 * k_s, std::chrono::milliseconds(1000));
    table.drop_gone();
    hooks.run(table, strings, 4 * k_s, std::chrono::milliseconds(1000));

    const auto& t = table.totals();
    std::uint64_t orig = 0, reply = 0;
    for (std::uint32_t id = 1; id <= 50; ++id) {
        orig += id * 1000 + (id <= 25 ? 1 : 0);
        reply += id * 10;
    }
    EXPECT_EQ(t.departed_orig_bytes + t.live_orig_bytes, orig);
    EXPECT_EQ(t.departed_reply_bytes + t.live_reply_bytes, reply);
    EXPECT_EQ(t.flows_by_proto[1], 25u);  // udp rows left in the table
    double rate = 0;
    table.for_each([&](const table::FlowRow& r) { rate += r.rate_known ? r.orig_rate : 0; });
    EXPECT_NEAR(t.orig_rate[0], rate, 1e-6);
}

TEST(TickContract, FlowsBusyTickAfterTickGatherSoTheirWritesUnshareFewChunks) {
    FlowTable table;
    StringPool strings;
    table::TickHooks hooks;
    constexpr std::uint32_t k_flows = 20000;
    // Two sweeps: every flow has a rate (zero), so only the ones that move stay busy.
    for (std::uint64_t tick = 0; tick <= 1; ++tick) {
        for (std::uint32_t id = 1; id <= k_flows; ++id)
            table.apply(record(id, MsgKind::dump), tick * k_s);
        hooks.run(table, strings, tick * k_s, std::chrono::milliseconds(1000));
        table.drop_gone();
    }
    // Every 100th flow sends traffic every tick: spread over every chunk at first.
    auto chunks_unshared_by_a_tick = [&](std::uint64_t tick) {
        const table::FlowRows frame = table.rows();  // a reader holds the last frame
        for (std::uint32_t id = 100; id <= k_flows; id += 100)
            table.apply(record(id, MsgKind::updated, tick * 1000, tick * 10), tick * k_s);
        hooks.run(table, strings, tick * k_s, std::chrono::milliseconds(1000));
        std::size_t copied = 0;
        for (std::size_t i = 0; i < frame.size(); i += table::FlowRows::k_chunk_rows)
            copied += &frame[i] != &table.rows()[i];
        table.drop_gone();
        return copied;
    };
    const std::size_t chunks = k_flows / table::FlowRows::k_chunk_rows + 1;
    EXPECT_GE(chunks_unshared_by_a_tick(2), chunks - 2);
    std::size_t last = 0;
    for (std::uint64_t tick = 3; tick <= 12; ++tick) last = chunks_unshared_by_a_tick(tick);
    // 200 busy rows fit in one chunk or two; the rows they swapped places with are settled.
    EXPECT_LE(last, 3u);
    // Moving rows kept every key pointing at its own row, and every busy flow's rate.
    for (std::uint32_t id = 1; id <= k_flows; ++id) {
        const auto* row = table.find(id);
        ASSERT_NE(row, nullptr);
        ASSERT_EQ(row->ct.id, id);
        if (id % 100 == 0) {
            EXPECT_FLOAT_EQ(row->orig_rate, 1000.0f);
        }
    }
}
