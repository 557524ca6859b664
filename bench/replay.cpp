// Replays synthesized conntrack netlink messages straight into parse -> table -> snapshot, to
// measure the user-space ceiling beyond what a kernel table here can hold (1M flows and more).
//   replay [--flows N] [--rounds R]
// Prints NEW-event ingest rate, full-dump processing time, publish time, and RSS per flow.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "flowtop/table/collector.hpp"

using namespace flowtop;

namespace {

using Conntrack = CPtr<nf_conntrack, nfct_destroy>;

long rss_kb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0;
}

// Datagrams of up to 64 kB, each holding many conntrack messages, as the kernel batches them.
struct Datagrams {
    std::vector<std::vector<std::byte>> list;
    std::vector<std::byte> current;

    void add(std::uint32_t id, bool dump_message) {
        alignas(nlmsghdr) char msg[1024];
        Conntrack ct(nfct_new());
        const std::uint32_t n = id;
        nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, AF_INET);
        nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, 6);
        std::uint32_t src = htonl((198u << 24) | (51u << 16) | (100u << 8) | (1 + n % 250));
        std::uint32_t dst = htonl((203u << 24) | (113u << 8) | (1 + (n / 250) % 250));
        nfct_set_attr_u32(ct.get(), ATTR_IPV4_SRC, src);
        nfct_set_attr_u32(ct.get(), ATTR_IPV4_DST, dst);
        nfct_set_attr_u16(ct.get(), ATTR_PORT_SRC, htons(static_cast<std::uint16_t>(1024 + n / 62500)));
        nfct_set_attr_u16(ct.get(), ATTR_PORT_DST, htons(443));
        nfct_setobjopt(ct.get(), NFCT_SOPT_SETUP_REPLY);
        nfct_set_attr_u8(ct.get(), ATTR_TCP_STATE, 3);
        nfct_set_attr_u32(ct.get(), ATTR_STATUS, 0xe);
        auto* nlh = mnl_nlmsg_put_header(msg);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
        nlh->nlmsg_flags = dump_message ? NLM_F_MULTI : (NLM_F_CREATE | NLM_F_EXCL);
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = AF_INET;
        nfh->version = NFNETLINK_V0;
        nfct_nlmsg_build(nlh, ct.get());
        mnl_attr_put_u32(nlh, CTA_ID, htonl(id));  // nfct_nlmsg_build leaves the id out
        if (dump_message) {
            // Dumps carry both directions' counters, as with nf_conntrack_acct=1.
            for (int dir = 0; dir < 2; ++dir) {
                auto* nest = mnl_attr_nest_start(nlh, dir == 0 ? CTA_COUNTERS_ORIG : CTA_COUNTERS_REPLY);
                mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(n % 1000));
                mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES, htobe64(n % 1000 * 1400ull));
                mnl_attr_nest_end(nlh, nest);
            }
        }
        append(msg, nlh->nlmsg_len);
    }
    void append(const void* data, std::size_t len) {
        if (current.size() + NLMSG_ALIGN(len) > (64 << 10)) flush();
        auto at = current.size();
        current.resize(at + NLMSG_ALIGN(len));
        std::memcpy(current.data() + at, data, len);
    }
    void done() {
        alignas(nlmsghdr) char msg[64];
        auto* nlh = mnl_nlmsg_put_header(msg);
        nlh->nlmsg_type = NLMSG_DONE;
        nlh->nlmsg_flags = NLM_F_MULTI;
        mnl_nlmsg_put_extra_header(nlh, 4);
        append(msg, nlh->nlmsg_len);
        flush();
    }
    void flush() {
        if (!current.empty()) list.push_back(std::move(current));
        current.clear();
    }
};

class ReplayIo : public ct::ConntrackIo {
public:
    const Datagrams* events = nullptr;
    const Datagrams* dump = nullptr;
    std::size_t next_event = 0, next_dump = 0;
    int event_fd() const noexcept override { return -1; }
    ct::RecvResult recv_events(std::span<std::byte> buf) noexcept override {
        if (!events || next_event >= events->list.size()) return {0, EAGAIN};
        const auto& d = events->list[next_event++];
        std::memcpy(buf.data(), d.data(), d.size());
        return {d.size(), 0};
    }
    void start_dump() override { next_dump = 0; }
    ct::RecvResult recv_dump(std::span<std::byte> buf) noexcept override {
        if (!dump || next_dump >= dump->list.size()) return {0, EIO};
        const auto& d = dump->list[next_dump++];
        std::memcpy(buf.data(), d.data(), d.size());
        return {d.size(), 0};
    }
};

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
    long flows = 1'000'000;
    for (int i = 1; i + 1 < argc; i += 2)
        if (std::string(argv[i]) == "--flows") flows = std::stol(argv[i + 1]);

    Datagrams events, dump;
    for (long i = 1; i <= flows; ++i) events.add(static_cast<std::uint32_t>(i), false);
    events.flush();
    for (long i = 1; i <= flows; ++i) dump.add(static_cast<std::uint32_t>(i), true);
    dump.done();

    // Ingest: NEW events into an empty table.
    double ingest_s = 0;
    {
        ReplayIo io;
        io.events = &events;
        table::SnapshotHub hub;
        table::Collector collector(io, hub, {.event_budget = std::chrono::hours(1)});
        auto t0 = std::chrono::steady_clock::now();
        collector.drain_events();
        ingest_s = seconds_since(t0);
    }
    malloc_trim(0);

    // Memory and refresh: flows found by dumps (as at start-up), then sweeps of an unchanged
    // table with a reader holding the latest frame while the writer builds the next.
    ReplayIo io;
    io.dump = &dump;
    table::SnapshotHub hub;
    table::Collector collector(io, hub, {});
    const long rss_empty = rss_kb();
    auto t0 = std::chrono::steady_clock::now();
    collector.full_dump(false);
    const double first_dump_s = seconds_since(t0);
    collector.publish();
    table::SnapshotPtr held;
    double dump_s = 0, publish_s = 0;
    for (int round = 0; round < 3; ++round) {
        held = hub.latest();
        t0 = std::chrono::steady_clock::now();
        collector.full_dump(false);
        dump_s = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        collector.publish();
        publish_s = seconds_since(t0);
    }
    malloc_trim(0);
    const long rss_full = rss_kb();

    std::printf("flows                %ld\n", flows);
    std::printf("event ingest         %.0f events/s (%.3f s for %ld NEW events)\n",
                flows / ingest_s, ingest_s, flows);
    std::printf("first dump (fill)    %.3f s (%.0f flows/s)\n", first_dump_s, flows / first_dump_s);
    std::printf("full dump (refresh)  %.3f s (%.0f flows/s)\n", dump_s, flows / dump_s);
    std::printf("publish (snapshot)   %.1f ms\n", publish_s * 1e3);
    std::printf("rss empty            %ld kB\n", rss_empty);
    std::printf("rss with table       %ld kB (steady state, a frame held by a reader)\n", rss_full);
    std::printf("bytes per flow       %.0f\n", (rss_full - rss_empty) * 1024.0 / flows);
    std::printf("table rows           %zu, frame rows %zu, sizeof(FlowRow) %zu\n",
                collector.table().size(), hub.latest()->rows.size(), sizeof(table::FlowRow));
    return 0;
}
