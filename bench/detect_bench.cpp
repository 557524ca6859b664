// The detectors' cost on the writer thread: the same synthetic stream (a table of N flows,
// then C new and C ended flows a second, plus U counter updates a second) ticked with and
// without the detectors; thread CPU per tick and heap held, each run from a fresh table.
//   detect_bench [--flows N] [--churn C] [--updates U] [--seconds S] [--scan]
//                [--detect NAME=VALUE]... (the settings of flowtop --detect: exfil=off costs
//                the others)
// --scan makes every new flow an unanswered probe from a new source (the worst case for the
// scan and flood state) instead of completed outbound and inbound connections.
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <malloc.h>
#include <netinet/in.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "flowtop/detect/detector.hpp"
#include "flowtop/table/flow_table.hpp"

using namespace flowtop;

namespace {

constexpr std::uint64_t k_s = 1'000'000'000ull;

double thread_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Config {
    long flows = 100000, churn = 10000, updates = 10000, seconds = 30;
    bool scan = false;
    detect::DetectConfig detect;  // --detect NAME=VALUE: e.g. exfil=off, to cost one detector
};

struct Result {
    double cpu_s_per_tick = 0;
    std::size_t heap = 0;
    std::uint64_t alerts = 0, evictions = 0, tracked = 0;
};

ct::FlowRecord make(std::uint32_t id, bool scan) {
    ct::FlowRecord r;
    r.id = id;
    r.kind = ct::MsgKind::created;
    r.proto = IPPROTO_TCP;
    r.has_counters = true;
    r.has_status = true;
    const bool inbound = id % 4 == 0;
    const std::uint32_t local = htonl(0xC0000201);  // 192.0.2.1
    // Remote hosts in 10.0.0.0/8 (spread), ports like a busy client: 443, 80, 22 and others.
    const std::uint32_t remote = htonl(0x0A000000 | (id * 2654435761u) % 0xFFFFFF);
    if (scan) {
        r.orig.src = Addr::v4(remote);
        r.orig.dst = Addr::v4(local);
        r.orig.dport = static_cast<std::uint16_t>(1 + id % 1024);
        r.status = 0;
        r.tcp_state = TCP_CONNTRACK_SYN_RECV;
    } else {
        r.orig.src = Addr::v4(inbound ? remote : local);
        r.orig.dst = Addr::v4(inbound ? local : remote);
        static const std::uint16_t ports[] = {443, 80, 22, 8443, 53, 5222};
        r.orig.dport = inbound ? 443 : ports[id % 6];
        r.status = IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED;
        r.tcp_state = TCP_CONNTRACK_ESTABLISHED;
    }
    r.orig.sport = static_cast<std::uint16_t>(1024 + id % 60000);
    r.reply.src = r.orig.dst;
    r.reply.dst = r.orig.src;
    r.reply.sport = r.orig.dport;
    r.reply.dport = r.orig.sport;
    r.start_ns = 0;
    return r;
}

Result run(const Config& cfg, bool detectors) {
    table::FlowTable table;
    StringPool strings;
    std::unique_ptr<detect::Detectors> det;
    // A hook that does nothing: the baseline pays the same TickHooks machinery.
    struct Nothing : table::TickHook {
        void on_tick(table::TickContext&) override {}
    } nothing;
    if (detectors)
        det = std::make_unique<detect::Detectors>(
            cfg.detect, std::make_unique<detect::StaticLocalNet>(
                            std::vector<Network>{*parse_network("192.0.2.1")},
                            std::vector<Network>{*parse_network("192.0.2.0/24")}));
    table::TickHooks hooks;
    hooks.add(detectors ? static_cast<table::TickHook*>(det.get()) : &nothing);
    std::uint64_t now = 1'800'000'000ull * k_s;
    std::uint32_t next_id = 1;
    std::vector<ct::FlowRecord> live;
    live.reserve(static_cast<std::size_t>(cfg.flows));
    for (long i = 0; i < cfg.flows; ++i) {
        live.push_back(make(next_id++, false));
        table.apply(live.back(), now);
    }
    hooks.run(table, strings, now, std::chrono::milliseconds(1000));
    table.drop_gone();
    malloc_trim(0);
    const std::size_t heap_before = mallinfo2().uordblks;
    double cpu = 0;
    std::size_t cursor = 0;
    for (long t = 0; t < cfg.seconds; ++t) {
        now += k_s;
        // Ingest is the collector's cost, the same in both runs: not timed.
        for (long i = 0; i < cfg.churn; ++i) {
            auto& old = live[cursor % live.size()];
            old.kind = ct::MsgKind::destroyed;
            table.apply(old, now);
            old = make(next_id++, cfg.scan);
            table.apply(old, now);
            ++cursor;
        }
        for (long i = 0; i < cfg.updates; ++i) {
            auto& r = live[(cursor * 7 + static_cast<std::size_t>(i) * 13) % live.size()];
            r.kind = ct::MsgKind::updated;
            r.orig_counters.bytes += 1500;
            r.orig_counters.packets += 1;
            r.reply_counters.bytes += 60;
            r.reply_counters.packets += 1;
            table.apply(r, now);
        }
        const double c0 = thread_cpu_s();
        hooks.run(table, strings, now, std::chrono::milliseconds(1000));
        cpu += thread_cpu_s() - c0;
        table.drop_gone();
    }
    Result res;
    res.cpu_s_per_tick = cpu / static_cast<double>(cfg.seconds);
    malloc_trim(0);
    const std::size_t heap_after = mallinfo2().uordblks;
    res.heap = heap_after > heap_before ? heap_after - heap_before : 0;
    if (det) {
        const auto log = det->alert_log();
        res.alerts = log->raised;
        res.evictions = log->evictions;
        res.tracked = log->tracked;
        for (const auto& a : log->alerts)
            std::printf("alert: %s (count %llu)\n", a->message.c_str(),
                        static_cast<unsigned long long>(a->count));
    }
    return res;
}

}  // namespace

int main(int argc, char** argv) {
    Config cfg;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::stol(argv[++i]) : 0L; };
        if (a == "--flows")
            cfg.flows = next();
        else if (a == "--churn")
            cfg.churn = next();
        else if (a == "--updates")
            cfg.updates = next();
        else if (a == "--seconds")
            cfg.seconds = next();
        else if (a == "--scan")
            cfg.scan = true;
        else if (a == "--detect" && i + 1 < argc)
            detect::apply_setting(cfg.detect, argv[++i]);
        else {
            std::fprintf(stderr,
                         "usage: detect_bench [--flows N] [--churn C] [--updates U] "
                         "[--seconds S] [--scan] [--detect NAME=VALUE]...\n");
            return 2;
        }
    }
    const Result base = run(cfg, false);
    const Result with = run(cfg, true);
    const double added_ms = (with.cpu_s_per_tick - base.cpu_s_per_tick) * 1e3;
    std::printf("flows %ld churn %ld/s updates %ld/s ticks %ld%s\n", cfg.flows, cfg.churn,
                cfg.updates, cfg.seconds, cfg.scan ? " (every new flow an unanswered probe)" : "");
    std::printf("tick without detectors  %.3f ms\n", base.cpu_s_per_tick * 1e3);
    std::printf("tick with detectors     %.3f ms\n", with.cpu_s_per_tick * 1e3);
    std::printf("added                   %.3f ms per 1 s tick = %.2f%% of a core\n", added_ms,
                added_ms / 10.0);
    std::printf(
        "detector heap           %.1f MB (tracked entries %llu, evictions %llu, "
        "alerts %llu)\n",
        static_cast<double>(with.heap > base.heap ? with.heap - base.heap : 0) / 1e6,
        static_cast<unsigned long long>(with.tracked),
        static_cast<unsigned long long>(with.evictions),
        static_cast<unsigned long long>(with.alerts));
    return 0;
}
