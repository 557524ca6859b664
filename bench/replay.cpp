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

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
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

    void add(std::uint32_t id, bool dump_message, std::uint64_t bytes_extra = 0,
             bool update_event = false, bool counters = true) {
        alignas(nlmsghdr) char msg[1024];
        Conntrack ct(nfct_new());
        const std::uint32_t n = id;
        nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, AF_INET);
        nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, 6);
        std::uint32_t src = htonl((198u << 24) | (51u << 16) | (100u << 8) | (1 + n % 250));
        std::uint32_t dst = htonl((203u << 24) | (113u << 8) | (1 + (n / 250) % 250));
        nfct_set_attr_u32(ct.get(), ATTR_IPV4_SRC, src);
        nfct_set_attr_u32(ct.get(), ATTR_IPV4_DST, dst);
        nfct_set_attr_u16(ct.get(), ATTR_PORT_SRC,
                          htons(static_cast<std::uint16_t>(1024 + n / 62500)));
        nfct_set_attr_u16(ct.get(), ATTR_PORT_DST, htons(443));
        nfct_setobjopt(ct.get(), NFCT_SOPT_SETUP_REPLY);
        nfct_set_attr_u8(ct.get(), ATTR_TCP_STATE, 3);
        nfct_set_attr_u32(ct.get(), ATTR_STATUS, 0xe);
        auto* nlh = mnl_nlmsg_put_header(msg);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
        nlh->nlmsg_flags = dump_message   ? NLM_F_MULTI
                           : update_event ? 0
                                          : (NLM_F_CREATE | NLM_F_EXCL);
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = AF_INET;
        nfh->version = NFNETLINK_V0;
        nfct_nlmsg_build(nlh, ct.get());
        mnl_attr_put_u32(nlh, CTA_ID, htonl(id));  // nfct_nlmsg_build leaves the id out
        if ((dump_message || update_event) && counters) {
            // Dumps carry both directions' counters, as with nf_conntrack_acct=1.
            for (int dir = 0; dir < 2; ++dir) {
                auto* nest =
                    mnl_attr_nest_start(nlh, dir == 0 ? CTA_COUNTERS_ORIG : CTA_COUNTERS_REPLY);
                mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(n % 1000));
                mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES,
                                 htobe64(n % 1000 * 1400ull + bytes_extra));
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

double thread_cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

class ReplayIo : public ct::ConntrackIo {
  public:
    const Datagrams* events = nullptr;
    const Datagrams* dump = nullptr;
    std::size_t next_event = 0, next_dump = 0;
    // Bytes each flow has sent beyond its dump value (index: id), for answering GETs the way
    // the kernel would: with the flow's current counters.
    std::vector<std::uint64_t>* extra = nullptr;
    Datagrams answers;
    std::size_t next_answer = 0;
    double fake_kernel_ms = 0;  // CPU spent building answers: the kernel's work, not ours
    bool request_flows(std::span<const ct::FlowRecord> flows, std::uint32_t) override {
        if (!extra) return false;
        const double started = thread_cpu_ms();
        answers = Datagrams{};
        next_answer = 0;
        for (const auto& f : flows) answers.add(f.id, false, (*extra)[f.id], true);
        answers.flush();
        fake_kernel_ms += thread_cpu_ms() - started;
        return true;
    }
    int event_fd() const noexcept override { return -1; }
    ct::RecvResult recv_events(std::span<std::byte> buf) noexcept override {
        if (!events || next_event >= events->list.size()) return {0, EAGAIN};
        const auto& d = events->list[next_event++];
        std::memcpy(buf.data(), d.data(), d.size());
        return {d.size(), 0};
    }
    void start_dump() override { next_dump = 0; }
    ct::RecvResult recv_dump(std::span<std::byte> buf) noexcept override {
        if (next_answer < answers.list.size()) {
            const auto& d = answers.list[next_answer++];
            std::memcpy(buf.data(), d.data(), d.size());
            return {d.size(), 0};
        }
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
    double changing = 0.01;  // share of the flows whose counters move each tick
    int ticks = 30;
    bool fresh = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::string(argv[i]) == "--flows") flows = std::stol(argv[i + 1]);
        if (std::string(argv[i]) == "--changing") changing = std::stod(argv[i + 1]);
        if (std::string(argv[i]) == "--ticks") ticks = std::stoi(argv[i + 1]);
        // steady: the same flows move every tick (long transfers); fresh: other ones each tick
        if (std::string(argv[i]) == "--moving") fresh = std::string(argv[i + 1]) == "fresh";
    }

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
    // No sweep between the ticks measured below (at 1M flows a sweep comes every 10 s; its cost
    // is the full dump's above); busy flows are re-read with GETs as in a live run.
    table::Collector collector(io, hub,
                               {.acct_on = true, .fixed_sweep_gap = std::chrono::hours(1)});
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
    const long rss_sweep = rss_kb();

    // Ticks between sweeps: a share of the flows sends traffic (an UPDATE event each, as when
    // their state moves), and the writer re-reads the busy ones with batched GETs, as in a live
    // run. The writer's CPU per tick: events, the GETs, then publishing (rates, hooks, the
    // frame, dropping gone rows).
    const long moving = std::max(1L, static_cast<long>(static_cast<double>(flows) * changing));
    std::vector<std::uint64_t> extra(static_cast<std::size_t>(flows) + 1, 0);
    io.extra = &extra;
    std::vector<double> tick_ms, publish_ms;
    for (int tick = 1; tick <= ticks; ++tick) {
        Datagrams updates;
        for (long k = 0; k < moving; ++k) {
            const long shift = fresh ? static_cast<long>(tick) * 7919 : 0;
            const long id = 1 + (shift + k * (flows / moving)) % flows;
            extra[static_cast<std::size_t>(id)] += 1400;
            updates.add(static_cast<std::uint32_t>(id), false, 0, true, false);
        }
        updates.flush();
        io.events = &updates;
        io.next_event = 0;
        held = hub.latest();
        io.fake_kernel_ms = 0;
        const double c0 = thread_cpu_ms();
        collector.drain_events();
        collector.refresh();
        const double c1 = thread_cpu_ms();
        collector.publish();
        const double c2 = thread_cpu_ms();
        tick_ms.push_back(c2 - c0 - io.fake_kernel_ms);
        publish_ms.push_back(c2 - c1);
        io.events = nullptr;
    }
    malloc_trim(0);
    const long rss_full = rss_kb();
    auto pct = [](std::vector<double> v, double p) {
        std::sort(v.begin(), v.end());
        return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
    };

    std::printf("flows                %ld\n", flows);
    std::printf("event ingest         %.0f events/s (%.3f s for %ld NEW events)\n",
                flows / ingest_s, ingest_s, flows);
    std::printf("first dump (fill)    %.3f s (%.0f flows/s)\n", first_dump_s, flows / first_dump_s);
    std::printf("full dump (refresh)  %.3f s (%.0f flows/s)\n", dump_s, flows / dump_s);
    std::printf("publish (snapshot)   %.1f ms\n", publish_s * 1e3);
    std::printf("rss empty            %ld kB\n", rss_empty);
    std::printf("rss after a sweep    %ld kB (%.0f bytes per flow: the sweep's lists included)\n",
                rss_sweep, (rss_sweep - rss_empty) * 1024.0 / flows);
    std::printf("rss with table       %ld kB (steady state between sweeps, a frame held)\n",
                rss_full);
    std::printf("bytes per flow       %.0f\n", (rss_full - rss_empty) * 1024.0 / flows);
    std::printf(
        "tick, %ld of %ld flows moving, %s (writer CPU ms over %d ticks, the fake kernel's answers "
        "to GETs left out)\n",
        moving, flows, fresh ? "other flows each tick" : "the same flows each tick", ticks);
    std::printf("  whole tick         median %.2f  p90 %.2f  max %.2f\n", pct(tick_ms, 0.5),
                pct(tick_ms, 0.9), pct(tick_ms, 1.0));
    std::printf("  publish alone      median %.2f  p90 %.2f  max %.2f\n", pct(publish_ms, 0.5),
                pct(publish_ms, 0.9), pct(publish_ms, 1.0));
    std::printf("table rows           %zu, frame rows %zu, sizeof(FlowRow) %zu\n",
                collector.table().size(), hub.latest()->rows.size(), sizeof(table::FlowRow));
    return 0;
}
