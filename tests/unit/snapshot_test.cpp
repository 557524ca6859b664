// Readers take frames while the writer publishes: every frame a reader sees is whole and from
// one tick (run under ThreadSanitizer-free ASan/UBSan in CI; races would show as torn frames).
#include "flowtop/table/snapshot.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <thread>

using namespace flowtop;

TEST(SnapshotHub, ConcurrentReadersSeeOnlyConsistentFrames) {
    table::SnapshotHub hub;
    std::atomic<bool> done{false};
    std::atomic<long> frames_checked{0};
    std::atomic<long> torn{0};
    std::vector<std::jthread> readers;
    for (int t = 0; t < 3; ++t)
        readers.emplace_back([&] {
            std::uint64_t last = 0;
            while (!done.load()) {
                auto s = hub.wait_newer(last, std::chrono::milliseconds(10));
                if (!s) continue;
                if (s->stats.seq < last) ++torn;  // frames never go back in time
                last = s->stats.seq;
                // Every row of a frame carries the frame's own tick number.
                for (const auto& r : s->rows)
                    if (r.ct.id != s->stats.seq || r.ct.orig_counters.bytes != s->stats.seq * 10)
                        ++torn;
                ++frames_checked;
            }
        });
    for (std::uint64_t seq = 1; seq <= 300; ++seq) {
        auto snap = std::make_shared<table::Snapshot>();
        snap->stats.seq = seq;
        snap->rows.resize(500);
        for (auto& r : snap->rows) {
            r.ct.id = static_cast<std::uint32_t>(seq);
            r.ct.orig_counters.bytes = seq * 10;
        }
        hub.publish(snap);
    }
    done = true;
    readers.clear();
    EXPECT_EQ(torn.load(), 0);
    EXPECT_GT(frames_checked.load(), 0);
    EXPECT_EQ(hub.latest()->stats.seq, 300u);
}

TEST(SnapshotHub, CloseWakesWaitersAtOnce) {
    table::SnapshotHub hub;
    std::jthread closer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        hub.close();
    });
    auto start = std::chrono::steady_clock::now();
    auto s = hub.wait_newer(0, std::chrono::seconds(10));
    EXPECT_FALSE(s);
    EXPECT_TRUE(hub.closed());
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}
