#include "flowtop/table/flow_rows.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <random>
#include <unordered_map>

#include "flowtop/table/flat_index.hpp"
#include "flowtop/table/flow_table.hpp"

using namespace flowtop;
using table::FlowRow;
using table::FlowRows;

TEST(FlowRows, AFrameKeepsItsRowsWhileTheOwnerChanges) {
    FlowRows rows;
    for (std::uint32_t i = 0; i < 1000; ++i) {
        FlowRow r{};
        r.ct.id = i;
        rows.push_back(r);
    }
    const FlowRows frame = rows;  // what publishing does
    rows[3].ct.id = 9999;
    rows.pop_back();
    EXPECT_EQ(frame[3].ct.id, 3u);
    EXPECT_EQ(frame.size(), 1000u);
    EXPECT_EQ(rows[3].ct.id, 9999u);
    EXPECT_EQ(rows.size(), 999u);
    // Untouched chunks stay shared: the same addresses in both.
    EXPECT_EQ(&frame[900], &std::as_const(rows)[900]);
    EXPECT_NE(&frame[3], &std::as_const(rows)[3]);
}

TEST(FlowRows, IteratesAndSortsLikeAVector) {
    FlowRows rows;
    for (std::uint32_t i = 0; i < 600; ++i) {
        FlowRow r{};
        r.ct.id = (i * 7919) % 600;
        rows.push_back(r);
    }
    std::vector<const FlowRow*> ptrs;
    for (const auto& r : std::as_const(rows)) ptrs.push_back(&r);
    std::sort(ptrs.begin(), ptrs.end(), [](auto* a, auto* b) { return a->ct.id < b->ct.id; });
    for (std::uint32_t i = 0; i < 600; ++i) EXPECT_EQ(ptrs[i]->ct.id, i);
    EXPECT_EQ(std::as_const(rows).end() - std::as_const(rows).begin(), 600);
    rows.resize(10);
    EXPECT_EQ(rows.size(), 10u);
    rows.clear();
    EXPECT_TRUE(rows.empty());
}

TEST(FlatIndex, MatchesAMapThroughInsertsAndErases) {
    table::FlatIndex index;
    std::unordered_map<std::uint32_t, std::uint32_t> truth;
    std::mt19937 rng(42);
    for (int step = 0; step < 200000; ++step) {
        std::uint32_t key = rng() % 50000;
        if (rng() % 3 == 0) {
            index.erase(key);
            truth.erase(key);
        } else {
            std::uint32_t v = rng() % 1000000;
            index.insert_or_assign(key, v);
            truth[key] = v;
        }
    }
    EXPECT_EQ(index.size(), truth.size());
    for (std::uint32_t key = 0; key < 50000; ++key) {
        auto it = truth.find(key);
        EXPECT_EQ(index.find(key), it == truth.end() ? table::FlatIndex::k_missing : it->second);
    }
}

TEST(FlowTable, IdleSweepLeavesPublishedChunksShared) {
    table::FlowTable t;
    auto dump_all = [&](std::uint64_t now) {
        t.begin_sweep();
        for (std::uint32_t id = 1; id <= 2000; ++id) {
            ct::FlowRecord r;
            r.id = id;
            r.proto = IPPROTO_UDP;
            r.has_counters = true;
            r.orig_counters = {1, 100};
            t.apply(r, now);
        }
        t.end_sweep(now);
        t.tick(now);
    };
    dump_all(1'000'000'000);
    dump_all(2'000'000'000);
    const FlowRows frame = t.rows();
    dump_all(3'000'000'000);  // nothing changed in the kernel
    for (std::size_t i = 0; i < frame.size(); i += FlowRows::k_chunk_rows)
        EXPECT_EQ(&frame[i], &t.rows()[i]) << "chunk of row " << i << " was copied";
}
