// Failures the kernel seldom shows on demand, made through the OS seam (util/os.hpp) while
// flowtop's collector talks to the real conntrack of a test namespace: a dump that overruns, a
// kernel that stops answering, answers left on the socket by an abandoned request.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/ct/flow_record.hpp"
#include "flowtop/ct/parser.hpp"
#include "flowtop/table/collector.hpp"
#include "flowtop/table/snapshot.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/system.hpp"
#include "harness.hpp"

using namespace flowtop;
using namespace flowtop::test;

namespace {

// `count` UDP flows from b to a (one per destination port): enough that a dump spans many
// datagrams (the kernel fills about 32 kB, ~100 flows, per read).
void open_udp_flows(const TestNet& net, int count) {
    UniqueFd fd(net.b.socket(AF_INET, SOCK_DGRAM));
    ASSERT_TRUE(fd);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    inet_pton(AF_INET, TestNet::a4, &to.sin_addr);
    for (int i = 0; i < count; ++i) {
        to.sin_port = htons(static_cast<std::uint16_t>(20000 + i));
        ASSERT_EQ(sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 1);
    }
}

std::size_t conntrack_count(const Namespace& ns) {
    return std::stoul(must(ns.exec("conntrack -C")));
}

// The collector of namespace `ns`, opened from inside it (the sockets stay there).
struct NamespaceCollector {
    explicit NamespaceCollector(const Namespace& ns) {
        UniqueFd netns(open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC));
        if (!netns) throw Error("cannot open the test namespace");
        ScopedNetns inside(netns.get());
        ct::KernelOptions options;
        options.subscribe_events = false;
        io = ct::open_kernel_conntrack(options);
        collector = std::make_unique<table::Collector>(*io, hub, table::CollectorConfig{});
    }
    std::unique_ptr<ct::ConntrackIo> io;
    table::SnapshotHub hub;
    std::unique_ptr<table::Collector> collector;
};

}  // namespace

TEST(Seam, ADumpThatOverrunsDeclaresNothingGoneAndTheResyncIsExact) {
    TestNet net;
    open_udp_flows(net, 1000);
    const std::size_t flows = conntrack_count(net.b);
    ASSERT_GE(flows, 1000u);
    NamespaceCollector nc(net.b);
    auto& collector = *nc.collector;
    collector.full_dump(false);
    ASSERT_EQ(collector.table().size(), flows);
    {
        // The third read of the next dump overruns: the table must keep every flow (an
        // incomplete dump may not end any), and the dump is not counted as one.
        os::ScopedFault fault({os::Call::recv, ENOBUFS, 2, 1});
        collector.full_dump(false);
        EXPECT_EQ(os::injected(os::Call::recv), 1);
    }
    EXPECT_EQ(collector.stats().dumps, 1u);
    EXPECT_EQ(collector.table().size(), flows);
    // The resync reads a whole new dump, not the tail of the broken one.
    collector.full_dump(true);
    EXPECT_EQ(collector.stats().resyncs, 1u);
    EXPECT_EQ(collector.stats().dumps, 2u);
    EXPECT_EQ(collector.table().size(), conntrack_count(net.b));
}

TEST(Seam, AnAbandonedBatchOfGetsDoesNotLeakIntoTheNextDump) {
    TestNet net;
    open_udp_flows(net, 300);
    NamespaceCollector nc(net.b);
    auto& io = *nc.io;
    std::vector<std::byte> buf(1 << 16);
    // Reads one whole dump; returns its flows and counts messages that carry `stale` seqs.
    auto dump = [&](std::uint32_t stale_from, std::uint32_t stale_count, std::size_t& stale) {
        std::vector<ct::FlowRecord> flows;
        ct::Parser parser;
        io.start_dump();
        bool done = false;
        for (int reads = 0; !done && reads < 10000; ++reads) {
            auto r = io.recv_dump(buf);
            if (r.error) {
                ADD_FAILURE() << "dump read failed: " << r.error;
                break;
            }
            int len = static_cast<int>(r.bytes);
            for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
                 h = NLMSG_NEXT(h, len))
                if (h->nlmsg_seq - stale_from < stale_count) ++stale;
            done = parser
                       .parse(std::span<const std::byte>(buf.data(), r.bytes),
                              [&](const ct::FlowRecord& f) { flows.push_back(f); })
                       .done;
        }
        EXPECT_TRUE(done);
        return flows;
    };
    std::size_t stale = 0;
    auto flows = dump(0, 0, stale);
    ASSERT_GE(flows.size(), 300u);
    // Ask for 50 flows, then fail the first read of their answers: they stay queued.
    constexpr std::uint32_t first_seq = 7000;
    ASSERT_TRUE(io.request_flows(std::span(flows).first(50), first_seq));
    {
        os::ScopedFault fault({os::Call::recv, ENOBUFS, 0, 1});
        EXPECT_EQ(io.recv_dump(buf).error, ENOBUFS);
    }
    // A dump now: none of its messages may be the GETs' answers.
    auto again = dump(first_seq, 50, stale);
    EXPECT_EQ(stale, 0u);
    EXPECT_EQ(again.size(), conntrack_count(net.b));
}

TEST(Seam, AKernelThatStopsAnsweringIsAClearError) {
    TestNet net;
    open_udp_flows(net, 10);
    NamespaceCollector nc(net.b);
    os::ScopedFault fault({os::Call::recv, EIO, 0, 1});
    try {
        nc.collector->full_dump(false);
        ADD_FAILURE() << "a failed read of the dump must be an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot read the conntrack table"), std::string::npos)
            << e.what();
    }
}

TEST(Seam, ARefusedRequestAtOpenSaysWhatToDo) {
    TestNet net;
    UniqueFd netns(open(("/run/netns/" + net.b.name()).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(netns);
    ScopedNetns inside(netns.get());
    os::ScopedFault fault({os::Call::send, EPERM, 0, 1});
    try {
        auto io = ct::open_kernel_conntrack();
        ADD_FAILURE() << "a refused request must be an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("sudo flowtop"), std::string::npos) << e.what();
    }
}
