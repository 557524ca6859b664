// The writer loop against a fake kernel: recorded netlink bytes and injected errors.
#include "flowtop/table/collector.hpp"

#include <gtest/gtest.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>

#include "recorded.hpp"

using namespace flowtop;

namespace {

class FakeConntrack : public ct::ConntrackIo {
  public:
    struct Item {
        std::vector<std::byte> bytes;
        int error = 0;
    };
    std::deque<Item> events;
    std::vector<std::vector<std::byte>> dump;
    int dumps_started = 0;

    int event_fd() const noexcept override { return -1; }
    ct::RecvResult recv_events(std::span<std::byte> buf) noexcept override {
        if (events.empty()) return {0, EAGAIN};
        Item it = std::move(events.front());
        events.pop_front();
        if (it.error) return {0, it.error};
        std::memcpy(buf.data(), it.bytes.data(), it.bytes.size());
        return {it.bytes.size(), 0};
    }
    void start_dump() override {
        ++dumps_started;
        next_ = 0;
    }
    ct::RecvResult recv_dump(std::span<std::byte> buf) noexcept override {
        if (next_ >= dump.size()) return {0, EIO};
        const auto& d = dump[next_++];
        std::memcpy(buf.data(), d.data(), d.size());
        return {d.size(), 0};
    }

  private:
    std::size_t next_ = 0;
};

}  // namespace

TEST(Collector, FirstFrameHoldsTheDump) {
    FakeConntrack io;
    io.dump = test::load_datagrams("dump.nl");
    table::SnapshotHub hub;
    table::Collector c(io, hub, {});
    c.full_dump(false);
    c.publish();
    auto snap = hub.latest();
    ASSERT_TRUE(snap);
    EXPECT_EQ(snap->stats.seq, 1u);
    EXPECT_EQ(snap->rows.size(), 4u);
    EXPECT_EQ(snap->stats.dumps, 1u);
    EXPECT_FALSE(snap->stats.empty_at_start);
}

TEST(Collector, LostEventsAreCountedAndHealedByAResync) {
    FakeConntrack io;
    io.dump = test::load_datagrams("dump.nl");
    for (auto& d : test::load_datagrams("events.nl")) io.events.push_back({std::move(d), 0});
    // The kernel overran the receive buffer in the middle of the stream.
    io.events.insert(io.events.begin() + 3, {{}, ENOBUFS});
    table::SnapshotHub hub;
    table::Collector c(io, hub, {});
    c.drain_events();
    EXPECT_EQ(c.stats().lost_events, 1u);
    // The run loop answers a loss with a full dump; here we drive it by hand.
    c.full_dump(true);
    c.publish();
    auto snap = hub.latest();
    EXPECT_EQ(snap->stats.lost_events, 1u);
    EXPECT_EQ(snap->stats.resyncs, 1u);
    // After the resync the table is what the kernel's dump says, plus the destroyed UDP flow
    // in its last frame.
    std::size_t live = 0, gone = 0;
    for (const auto& r : snap->rows) (r.gone ? gone : live)++;
    EXPECT_EQ(live, 4u);
    EXPECT_EQ(gone, 1u);
}

TEST(Collector, RunLoopPublishesEveryTickAndStops) {
    FakeConntrack io;
    io.dump = test::load_datagrams("dump.nl");
    table::SnapshotHub hub;
    table::Collector c(io, hub, {.interval = std::chrono::milliseconds(50)});
    std::jthread writer([&](std::stop_token st) { c.run(st); });
    std::uint64_t seq = 0;
    for (int i = 0; i < 3; ++i) {
        auto s = hub.wait_newer(seq, std::chrono::seconds(2));
        ASSERT_TRUE(s);
        ASSERT_GT(s->stats.seq, seq);
        seq = s->stats.seq;
    }
    writer.request_stop();
    writer.join();
    EXPECT_GE(io.dumps_started, 3);
}

TEST(Collector, ReadersKeepTheirFrameWhileTheWriterGoesOn) {
    FakeConntrack io;
    io.dump = test::load_datagrams("dump.nl");
    table::SnapshotHub hub;
    table::Collector c(io, hub, {});
    c.full_dump(false);
    c.publish();
    auto held = hub.latest();
    const auto rows_before = held->rows;
    for (int i = 0; i < 10; ++i) {
        c.full_dump(false);
        c.publish();
    }
    EXPECT_EQ(held->stats.seq, 1u);
    ASSERT_EQ(held->rows.size(), rows_before.size());
    for (std::size_t i = 0; i < rows_before.size(); ++i)
        EXPECT_EQ(0, std::memcmp(&held->rows[i], &rows_before[i], sizeof(table::FlowRow)));
    EXPECT_EQ(hub.latest()->stats.seq, 11u);
}

namespace {

// A dump that finds the table empty: NLMSG_DONE alone.
std::vector<std::byte> empty_dump() {
    std::vector<std::byte> bytes(NLMSG_LENGTH(sizeof(int)));
    auto* h = reinterpret_cast<nlmsghdr*>(bytes.data());
    h->nlmsg_len = static_cast<std::uint32_t>(bytes.size());
    h->nlmsg_type = NLMSG_DONE;
    h->nlmsg_flags = NLM_F_MULTI;
    return bytes;
}

std::size_t rows_labelled(const table::Snapshot& snap, std::string_view label, bool gone) {
    std::size_t n = 0;
    for (const auto& r : snap.rows) n += snap.str(r.netns) == label && r.gone == gone;
    return n;
}

}  // namespace

TEST(Collector, NamespacesWithTheSameConntrackIdsStayApart) {
    // Two namespaces whose tables hold flows with the very same ids (as two recorded dumps).
    FakeConntrack a, b;
    a.dump = test::load_datagrams("dump.nl");
    b.dump = test::load_datagrams("dump.nl");
    table::SnapshotHub hub;
    table::Collector c(hub, {});
    EXPECT_EQ(c.add_source(a, "red"), 0u);
    EXPECT_EQ(c.add_source(b, "blue"), 1u);
    c.full_dump(false);
    c.publish();
    auto snap = hub.latest();
    ASSERT_EQ(snap->rows.size(), 8u);
    EXPECT_EQ(snap->stats.sources, 2u);
    EXPECT_EQ(rows_labelled(*snap, "red", false), 4u);
    EXPECT_EQ(rows_labelled(*snap, "blue", false), 4u);
    for (const auto& r : snap->rows) {
        ASSERT_NE(c.table().find(ct::flow_key(r.ct)), nullptr);
        EXPECT_EQ(c.table().find(ct::flow_key(r.ct))->netns, r.netns);
    }

    // A dump of one namespace speaks for that namespace alone: blue's table emptied, red's
    // flows stay.
    b.dump = {empty_dump()};
    c.full_dump(false);
    c.publish();
    snap = hub.latest();
    EXPECT_EQ(rows_labelled(*snap, "red", false), 4u);
    EXPECT_EQ(rows_labelled(*snap, "blue", true), 4u);
    c.full_dump(false);
    c.publish();
    EXPECT_EQ(hub.latest()->rows.size(), 4u);
}

TEST(Collector, ARemovedNamespaceEndsItsFlowsOnceAndFreesItsSlot) {
    FakeConntrack a, b, c2;
    a.dump = test::load_datagrams("dump.nl");
    b.dump = test::load_datagrams("dump.nl");
    c2.dump = test::load_datagrams("dump.nl");
    table::SnapshotHub hub;
    table::Collector c(hub, {});
    c.add_source(a, "red");
    const auto blue = c.add_source(b, "blue");
    c.full_dump(false);
    c.publish();
    c.remove_source(blue);
    EXPECT_EQ(c.source_count(), 1u);
    const int dumps_of_blue = b.dumps_started;
    c.full_dump(false);
    c.publish();
    auto snap = hub.latest();
    EXPECT_EQ(rows_labelled(*snap, "blue", true), 4u);  // shown once more, as gone
    EXPECT_EQ(rows_labelled(*snap, "red", false), 4u);
    EXPECT_EQ(b.dumps_started, dumps_of_blue);  // never touched again
    // The next namespace takes the free slot; the gone rows have left by then.
    EXPECT_EQ(c.add_source(c2, "green"), blue);
    c.full_dump(false);
    c.publish();
    snap = hub.latest();
    EXPECT_EQ(rows_labelled(*snap, "blue", true), 0u);
    EXPECT_EQ(rows_labelled(*snap, "green", false), 4u);
    EXPECT_EQ(snap->rows.size(), 8u);
}

TEST(Collector, FramesCarryTotalsSinceStartThatAReaderSkippingFramesStillSees) {
    FakeConntrack io;
    io.dump = test::load_datagrams("dump.nl");
    table::SnapshotHub hub;
    table::Collector c(io, hub, {});
    c.full_dump(false);
    c.publish();
    auto first = hub.latest();
    ASSERT_TRUE(first);
    std::uint64_t orig = 0, reply = 0, flows = 0;
    for (const auto& row : first->rows) {
        if (!row.has_counters()) continue;
        orig += row.ct.orig_counters.bytes;
        reply += row.ct.reply_counters.bytes;
    }
    ASSERT_GT(orig + reply, 0u) << "the recorded dump carries counters";
    for (auto n : first->stats.flows_by_proto) flows += n;
    EXPECT_EQ(flows, first->rows.size());
    EXPECT_EQ(first->stats.orig_bytes_total, orig);
    EXPECT_EQ(first->stats.reply_bytes_total, reply);
    // The table empties (a complete dump with nothing in it): two frames go by unread, and the
    // departed flows' bytes are still in the total.
    io.dump = {test::load_datagrams("dump.nl").back()};  // NLMSG_DONE only
    c.full_dump(false);
    c.publish();
    c.publish();
    auto later = hub.latest();
    EXPECT_EQ(later->rows.size(), 0u);
    EXPECT_EQ(later->stats.orig_bytes_total, orig);
    EXPECT_EQ(later->stats.reply_bytes_total, reply);
    for (auto n : later->stats.flows_by_proto) EXPECT_EQ(n, 0u);
}
