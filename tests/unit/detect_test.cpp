// The detectors on synthetic flow streams: a FlowTable fed records tick by tick, the detectors
// as its tick hook, and the alert log they publish. Thresholds, sliding windows, folding,
// memory caps and allow-lists.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <netinet/in.h>

#include <set>

#include "flowtop/detect/alert_format.hpp"
#include "flowtop/detect/config.hpp"
#include "flowtop/detect/detector.hpp"
#include "flowtop/table/flow_table.hpp"
#include "flowtop/ui/options.hpp"
#include "flowtop/util/error.hpp"

using namespace flowtop;
using table::AlertKind;

namespace {

constexpr std::uint64_t k_s = 1'000'000'000ull;
constexpr std::uint64_t k_t0 = 1'800'000'000ull * k_s;

Addr v4(const char* text) { return parse_addr(text)->first; }

// This host is 192.0.2.1 on 192.0.2.0/24; everything else is remote.
std::unique_ptr<detect::LocalNet> local_net() {
    return std::make_unique<detect::StaticLocalNet>(
        std::vector<Network>{*parse_network("192.0.2.1")},
        std::vector<Network>{*parse_network("192.0.2.0/24")});
}

class DetectUnit : public ::testing::Test {
  protected:
    void make(detect::DetectConfig config = {}, detect::DetectorEnv env = {}) {
        det = std::make_unique<detect::Detectors>(config, local_net(), env);
    }
    // A flow record; status bits say whether it completed.
    ct::FlowRecord flow(const char* src, const char* dst, std::uint16_t dport,
                        std::uint8_t proto = IPPROTO_TCP, std::uint32_t status = 0) {
        ct::FlowRecord r;
        r.id = next_id++;
        r.kind = ct::MsgKind::created;
        r.proto = proto;
        r.orig.src = v4(src);
        r.orig.dst = v4(dst);
        r.orig.sport = static_cast<std::uint16_t>(40000 + r.id % 20000);
        r.orig.dport = dport;
        r.reply.src = r.orig.dst;
        r.reply.dst = r.orig.src;
        r.reply.sport = dport;
        r.reply.dport = r.orig.sport;
        r.has_status = true;
        r.status = status;
        if (proto == IPPROTO_TCP)
            r.tcp_state = status & IPS_ASSURED ? TCP_CONNTRACK_ESTABLISHED : TCP_CONNTRACK_SYN_SENT;
        return r;
    }
    void add(const ct::FlowRecord& r) { table.apply(r, now); }
    void tick(std::uint64_t advance_s = 1) {
        table::tick_with(*det, table, strings, now);
        table.drop_gone();
        now += advance_s * k_s;
    }
    std::vector<std::shared_ptr<const table::Alert>> alerts(AlertKind kind) const {
        std::vector<std::shared_ptr<const table::Alert>> out;
        for (const auto& a : det->alert_log()->alerts)
            if (a->kind == kind) out.push_back(a);
        return out;
    }
    std::size_t total() const { return det->alert_log()->alerts.size(); }
    void enrich(const ct::FlowRecord& r, auto f) {
        table::FlowEnrichment e = *table.find(ct::flow_key(r));
        f(e);
        table.set_enrichment(ct::flow_key(r), e);
    }

    table::FlowTable table;
    StringPool strings;
    std::unique_ptr<detect::Detectors> det;
    std::uint64_t now = k_t0;
    std::uint32_t next_id = 1;
};

constexpr std::uint32_t k_done = IPS_SEEN_REPLY | IPS_ASSURED;

}  // namespace

TEST_F(DetectUnit, PortScanAlertsAtTheThresholdAndFoldsWhatFollows) {
    make();
    for (int p = 1; p <= 99; ++p)
        add(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p)));
    tick();
    EXPECT_TRUE(alerts(AlertKind::port_scan).empty()) << "99 ports: below 100";
    add(flow("198.51.100.2", "192.0.2.1", 100));
    tick();
    auto scans = alerts(AlertKind::port_scan);
    ASSERT_EQ(scans.size(), 1u);
    const auto id = scans.front()->id;
    EXPECT_EQ(scans.front()->src, "198.51.100.2");
    EXPECT_EQ(scans.front()->distinct, 100u);
    EXPECT_EQ(scans.front()->message, "198.51.100.2 probed 100 ports of 192.0.2.1 in 1 s");
    for (int p = 101; p <= 150; ++p)
        add(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p)));
    tick();
    scans = alerts(AlertKind::port_scan);
    ASSERT_EQ(scans.size(), 1u) << "folded, not a second alert";
    EXPECT_EQ(scans.front()->id, id);
    EXPECT_EQ(scans.front()->distinct, 150u);
    EXPECT_EQ(scans.front()->count, 150u);
    EXPECT_GT(scans.front()->seq, 1u);
    // Evidence flows carry the alert id.
    EXPECT_EQ(table.find(ct::flow_key(0, 1))->alert, id);
}

TEST_F(DetectUnit, PortScanWindowSlides) {
    detect::DetectConfig c;
    c.scan_window = std::chrono::seconds(10);
    make(c);
    for (int p = 1; p <= 60; ++p)
        add(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p)));
    tick(11);  // older than the window by the next batch
    for (int p = 61; p <= 120; ++p)
        add(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p)));
    tick();
    EXPECT_TRUE(alerts(AlertKind::port_scan).empty());
}

TEST_F(DetectUnit, CompletedFlowsAreNotProbes) {
    make();
    for (int p = 1; p <= 200; ++p)
        add(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p), IPPROTO_TCP, k_done));
    for (int p = 1; p <= 200; ++p)
        add(flow("198.51.100.3", "192.0.2.1", static_cast<std::uint16_t>(p), IPPROTO_UDP,
                 IPS_SEEN_REPLY));
    tick();
    EXPECT_EQ(total(), 0u);
}

TEST_F(DetectUnit, ProbeAnsweredOnTheNextTickIsTakenBack) {
    make();
    std::vector<ct::FlowRecord> flows;
    for (int p = 1; p <= 99; ++p)
        flows.push_back(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p)));
    for (const auto& f : flows) add(f);
    tick();
    for (auto f : flows) {  // they completed after all
        f.kind = ct::MsgKind::updated;
        f.status = k_done;
        f.tcp_state = TCP_CONNTRACK_ESTABLISHED;
        add(f);
    }
    tick();
    for (int p = 100; p <= 120; ++p)
        add(flow("198.51.100.2", "192.0.2.1", static_cast<std::uint16_t>(p)));
    tick();
    EXPECT_TRUE(alerts(AlertKind::port_scan).empty());
}

TEST_F(DetectUnit, UdpScanOutboundAndHostSweep) {
    make();
    for (int p = 1; p <= 120; ++p)
        add(flow("192.0.2.1", "203.0.113.9", static_cast<std::uint16_t>(p), IPPROTO_UDP));
    for (int h = 1; h <= 50; ++h)
        add(flow("192.0.2.1", ("203.0.113." + std::to_string(100 + h)).c_str(), 445));
    tick();
    auto scans = alerts(AlertKind::port_scan);
    ASSERT_EQ(scans.size(), 1u);
    EXPECT_EQ(scans.front()->src, "192.0.2.1");
    EXPECT_EQ(scans.front()->proto, IPPROTO_UDP);
    auto sweeps = alerts(AlertKind::host_sweep);
    ASSERT_EQ(sweeps.size(), 1u);
    EXPECT_EQ(sweeps.front()->distinct, 50u);
    EXPECT_EQ(sweeps.front()->ports.front(), 445);
}

TEST_F(DetectUnit, ScanStateIsCappedAndEvictionsCounted) {
    detect::DetectConfig c;
    c.max_tracked = 64;
    make(c);
    for (int s = 0; s < 2000; ++s) {
        char src[32];
        std::snprintf(src, sizeof src, "10.%d.%d.1", s / 250, s % 250);
        add(flow(src, "192.0.2.1", 80));
    }
    tick();
    const auto log = det->alert_log();
    EXPECT_GT(log->evictions, 0u);
    EXPECT_LT(log->tracked, 1000u) << "bounded by the cap, not by the 2000 sources";
}

TEST_F(DetectUnit, FloodNeedsDistinctSourcesWithHalfOpenFlows) {
    detect::DetectConfig c;
    c.flood_sources = 50;
    make(c);
    for (int s = 1; s <= 49; ++s)
        add(flow(("198.51.100." + std::to_string(s)).c_str(), "192.0.2.1", 443));
    for (int s = 1; s <= 100; ++s)  // completed handshakes: a busy server, not a flood
        add(flow(("203.0.113." + std::to_string(s)).c_str(), "192.0.2.1", 443, IPPROTO_TCP,
                 k_done));
    tick();
    EXPECT_TRUE(alerts(AlertKind::syn_flood).empty());
    add(flow("198.51.100.50", "192.0.2.1", 443));
    tick();
    auto flood = alerts(AlertKind::syn_flood);
    ASSERT_EQ(flood.size(), 1u);
    EXPECT_EQ(flood.front()->distinct, 50u);
    EXPECT_EQ(flood.front()->severity, table::Severity::high);
    EXPECT_TRUE(alerts(AlertKind::port_scan).empty());
}

TEST_F(DetectUnit, FanOutToOneRemoteService) {
    detect::DetectConfig c;
    c.fanout_flows = 100;
    make(c);
    for (int i = 0; i < 99; ++i) add(flow("192.0.2.1", "203.0.113.5", 80, IPPROTO_TCP, k_done));
    tick();
    EXPECT_TRUE(alerts(AlertKind::fan_out).empty());
    for (int i = 0; i < 20; ++i) add(flow("192.0.2.1", "203.0.113.5", 80, IPPROTO_TCP, k_done));
    tick();
    auto fan = alerts(AlertKind::fan_out);
    ASSERT_EQ(fan.size(), 1u);
    EXPECT_GE(fan.front()->distinct, 100u);
    EXPECT_EQ(fan.front()->dsts.front(), "203.0.113.5");
}

// The fan-out keys pass a count-min sketch first: a busy client's 20,000 one-flow
// destinations cost no tracked key each (tracked stays far under the cap), while the one
// destination it hammers is still counted from its first flow and alerts at the threshold.
TEST_F(DetectUnit, FanOutTracksOnlyKeysTheSketchCountsOften) {
    detect::DetectConfig c;
    c.fanout_flows = 100;
    c.fanout_jump = 1000000;  // the burst itself is not the point here
    c.max_tracked = 512;
    make(c);
    for (int i = 0; i < 20000; ++i) {
        char dst[32];
        std::snprintf(dst, sizeof dst, "10.%d.%d.%d", i / 65536, i / 256 % 256, i % 256);
        add(flow("192.0.2.1", dst, 443, IPPROTO_TCP, k_done));
    }
    for (int i = 0; i < 90; ++i) add(flow("192.0.2.1", "203.0.113.5", 80, IPPROTO_TCP, k_done));
    tick();
    EXPECT_TRUE(alerts(AlertKind::fan_out).empty());
    EXPECT_LT(det->alert_log()->tracked, 200u) << "one-flow destinations are not tracked";
    for (int i = 0; i < 20; ++i) add(flow("192.0.2.1", "203.0.113.5", 80, IPPROTO_TCP, k_done));
    tick();
    auto fan = alerts(AlertKind::fan_out);
    ASSERT_EQ(fan.size(), 1u);
    EXPECT_EQ(fan.front()->dsts.front(), "203.0.113.5");
    EXPECT_GE(fan.front()->distinct, 100u);
    EXPECT_LE(fan.front()->distinct, 115u) << "110 flows, counted within a few";
}

TEST_F(DetectUnit, ExfiltrationCountsOrigBytesOutOnly) {
    detect::DetectConfig c;
    c.exfil_bytes = 40ull << 20;
    c.exfil_allow = {"203.0.113.0/28", "rsync"};
    make(c);
    auto up = flow("192.0.2.1", "198.51.100.7", 443, IPPROTO_TCP, k_done);
    auto down = flow("192.0.2.1", "198.51.100.8", 443, IPPROTO_TCP, k_done);
    auto allowed_net = flow("192.0.2.1", "203.0.113.3", 443, IPPROTO_TCP, k_done);
    auto allowed_proc = flow("192.0.2.1", "198.51.100.9", 873, IPPROTO_TCP, k_done);
    for (auto* r : {&up, &down, &allowed_net, &allowed_proc}) {
        r->has_counters = true;
        add(*r);
    }
    enrich(allowed_proc, [&](table::FlowEnrichment& e) {
        e.pid = 77;
        e.comm = strings.intern("rsync");
    });
    tick();
    for (int i = 1; i <= 5; ++i) {
        for (auto* r : {&up, &allowed_net, &allowed_proc}) {
            r->kind = ct::MsgKind::updated;
            r->orig_counters = {1000ull * i, 10ull * i << 20};  // 10 MB a tick out
            add(*r);
        }
        down.kind = ct::MsgKind::updated;
        down.orig_counters = {1000ull * i, 100'000ull * i};
        down.reply_counters = {1000ull * i, 10ull * i << 20};  // 10 MB a tick in
        add(down);
        tick();
        if (i == 3) {
            EXPECT_TRUE(alerts(AlertKind::exfiltration).empty()) << "30 MB < 40 MB";
        }
    }
    auto ex = alerts(AlertKind::exfiltration);
    ASSERT_EQ(ex.size(), 1u);
    EXPECT_EQ(ex.front()->dsts, std::vector<std::string>{"198.51.100.7"});
    EXPECT_GE(ex.front()->bytes, 40ull << 20);
}

// The per-flow baselines are capped (16 x max_tracked flows) and evict with a clock hand:
// under a churn of one-byte flows that keeps the table full, a flow that sends every tick
// keeps its baseline, so its bytes are counted once, not again after an eviction.
TEST_F(DetectUnit, ExfiltrationBaselinesAreCappedAndABusyFlowKeepsItsOwn) {
    detect::DetectConfig c;
    c.exfil_bytes = 32ull << 20;
    c.max_tracked = 64;  // 1024 flows
    c.fanout = false;    // the churn is not the point here
    make(c);
    auto up = flow("192.0.2.1", "198.51.100.7", 443, IPPROTO_TCP, k_done);
    up.has_counters = true;
    add(up);
    tick();
    for (int i = 1; i <= 30; ++i) {
        for (int n = 0; n < 300; ++n) {
            char dst[32];
            std::snprintf(dst, sizeof dst, "10.1.%d.%d", (i * 300 + n) / 256 % 256,
                          (i * 300 + n) % 256);
            auto small = flow("192.0.2.1", dst, 80, IPPROTO_TCP, k_done);
            small.has_counters = true;
            small.orig_counters = {1, 1};
            add(small);
        }
        up.kind = ct::MsgKind::updated;
        up.orig_counters = {1000ull * i, std::uint64_t(i) << 20};  // 1 MB a tick out
        add(up);
        tick();
    }
    EXPECT_TRUE(alerts(AlertKind::exfiltration).empty()) << "30 MB and 9000 bytes < 32 MB";
    const auto log = det->alert_log();
    EXPECT_GT(log->evictions, 0u);
    EXPECT_LT(log->tracked, 1100u) << "9000 flows, 1024 baselines at most";
    for (int i = 31; i <= 33; ++i) {
        up.orig_counters = {1000ull * i, std::uint64_t(i) << 20};
        add(up);
        tick();
    }
    auto ex = alerts(AlertKind::exfiltration);
    ASSERT_EQ(ex.size(), 1u);
    EXPECT_GE(ex.front()->bytes, 32ull << 20);
    EXPECT_LT(ex.front()->bytes, 34ull << 20) << "each byte once";
}

TEST_F(DetectUnit, FirstContactAfterLearningAndOutsideTheAllowList) {
    detect::DetectConfig c;
    c.country_learn = std::chrono::seconds(5);
    make(c);
    auto contact = [&](const char* dst, const char* cc) {
        auto r = flow("192.0.2.1", dst, 443, IPPROTO_TCP, k_done);
        add(r);
        enrich(r, [&](table::FlowEnrichment& e) { e.dst_country = strings.intern(cc); });
    };
    contact("198.51.100.1", "NL");
    tick(10);
    contact("198.51.100.2", "NL");  // known from learning
    contact("203.0.113.1", "JP");
    contact("203.0.113.2", "JP");
    contact("10.0.0.1", "--");  // a private address: no country
    tick();
    auto cc = alerts(AlertKind::new_country);
    ASSERT_EQ(cc.size(), 1u);
    EXPECT_EQ(cc.front()->country, "JP");
    EXPECT_EQ(cc.front()->count, 2u);

    detect::DetectConfig listed;
    listed.allow_country = {"NL", "JP"};
    make(listed);
    contact("203.0.113.3", "JP");
    contact("198.51.100.3", "DE");
    tick();
    cc = alerts(AlertKind::new_country);
    ASSERT_EQ(cc.size(), 1u) << "only DE is outside the list; no learning needed";
    EXPECT_EQ(cc.front()->country, "DE");
}

TEST_F(DetectUnit, NewServiceAfterLearningWaitsForItsOwner) {
    detect::DetectConfig c;
    c.service_learn = std::chrono::seconds(5);
    c.service_allow = {"8443/tcp"};
    make(c, detect::DetectorEnv{.attribution = true});
    add(flow("198.51.100.2", "192.0.2.1", 22, IPPROTO_TCP, k_done));
    tick(10);
    add(flow("198.51.100.3", "192.0.2.1", 22, IPPROTO_TCP, k_done));    // learned
    add(flow("198.51.100.3", "192.0.2.1", 8443, IPPROTO_TCP, k_done));  // allowed
    add(flow("198.51.100.3", "192.0.2.1", 2323, IPPROTO_TCP));          // never accepted
    auto owned = flow("198.51.100.4", "192.0.2.1", 4444, IPPROTO_TCP, k_done);
    add(owned);
    tick();
    EXPECT_TRUE(alerts(AlertKind::new_service).empty()) << "waiting a tick for the owner";
    enrich(owned, [&](table::FlowEnrichment& e) {
        e.pid = 4242;
        e.comm = strings.intern("nc");
    });
    tick();
    auto svc = alerts(AlertKind::new_service);
    ASSERT_EQ(svc.size(), 1u);
    EXPECT_EQ(svc.front()->ports.front(), 4444);
    EXPECT_EQ(svc.front()->process, "nc");
    EXPECT_NE(svc.front()->message.find("owned by nc (pid 4242)"), std::string::npos);
}

TEST_F(DetectUnit, LongLivedFlowsComeUpInTheRollingPass) {
    detect::DetectConfig c;
    c.long_after = std::chrono::seconds(3600);
    make(c);
    auto old = flow("192.0.2.1", "198.51.100.5", 4443, IPPROTO_TCP, k_done);
    old.start_ns = now - 7200 * k_s;
    add(old);
    add(flow("192.0.2.1", "198.51.100.6", 443, IPPROTO_TCP, k_done));  // young
    for (int i = 0; i < 3; ++i) tick();
    auto lived = alerts(AlertKind::long_lived);
    ASSERT_EQ(lived.size(), 1u);
    EXPECT_EQ(lived.front()->severity, table::Severity::low);
    EXPECT_EQ(lived.front()->count, 1u) << "once per flow, however often the pass visits it";
}

TEST_F(DetectUnit, WellKnownProgramOnAnOddPort) {
    make();
    auto odd = flow("198.51.100.2", "192.0.2.1", 2222, IPPROTO_TCP, k_done);
    auto usual = flow("198.51.100.2", "192.0.2.1", 22, IPPROTO_TCP, k_done);
    add(odd);
    add(usual);
    for (const auto* r : {&odd, &usual})
        enrich(*r, [&](table::FlowEnrichment& e) {
            e.pid = 100;
            e.comm = strings.intern("sshd");
        });
    tick();
    auto alerts_odd = alerts(AlertKind::odd_port);
    ASSERT_EQ(alerts_odd.size(), 1u);
    EXPECT_EQ(alerts_odd.front()->ports.front(), 2222);
}

TEST_F(DetectUnit, ReaderSkippingFramesSeesEveryAlertBySequence) {
    detect::DetectConfig c;
    c.scan_ports = 10;
    c.max_alerts = 3;
    make(c);
    std::uint64_t last_seq = 0;
    std::set<std::uint64_t> seen;
    for (int s = 1; s <= 5; ++s) {
        for (int p = 1; p <= 10; ++p)
            add(flow(("198.51.100." + std::to_string(s)).c_str(), "192.0.2.1",
                     static_cast<std::uint16_t>(p)));
        tick();
        if (s % 2) continue;  // this reader looks at every other frame only
        for (const auto& a : det->alert_log()->alerts)
            if (a->seq > last_seq) seen.insert(a->id);
        last_seq = det->alert_log()->seq;
    }
    for (const auto& a : det->alert_log()->alerts)
        if (a->seq > last_seq) seen.insert(a->id);
    EXPECT_EQ(seen.size(), 5u);
    EXPECT_EQ(det->alert_log()->alerts.size(), 3u) << "max_alerts";
    EXPECT_EQ(det->alert_log()->dropped, 2u);
}

TEST_F(DetectUnit, SettingsByNameWithUnitsAndClearErrors) {
    detect::DetectConfig c;
    detect::apply_setting(c, "scan.ports=20");
    detect::apply_setting(c, "exfil.bytes=50M");
    detect::apply_setting(c, "country.learn=2m");
    detect::apply_setting(c, "exfil.allow=192.0.2.0/24, NL ,rsync");
    detect::apply_setting(c, "flood=off");
    EXPECT_EQ(c.scan_ports, 20u);
    EXPECT_EQ(c.exfil_bytes, 50ull << 20);
    EXPECT_EQ(c.country_learn, std::chrono::seconds(120));
    EXPECT_EQ(c.exfil_allow, (std::vector<std::string>{"192.0.2.0/24", "NL", "rsync"}));
    EXPECT_FALSE(c.flood);
    EXPECT_THROW(detect::apply_setting(c, "scan.prots=3"), UsageError);
    EXPECT_THROW(detect::apply_setting(c, "scan.ports=0"), UsageError);
    EXPECT_THROW(detect::apply_setting(c, "scan.window=5x"), UsageError);
    EXPECT_THROW(detect::apply_setting(c, "noequals"), UsageError);
    const auto text = detect::describe(detect::DetectConfig{});
    EXPECT_NE(text.find("scan.ports=100"), std::string::npos);
    EXPECT_NE(text.find("exfil.bytes=32M"), std::string::npos);
}

TEST_F(DetectUnit, AlertTextEscapesWhatCameFromTheNetwork) {
    table::Alert a;
    a.id = 7;
    a.kind = AlertKind::new_service;
    a.process = "evil\"\n\x1b[2J";
    a.message = "owned by evil\x1b[2J";
    const auto json = detect::alert_json(a, true);
    EXPECT_NE(json.find("\"process\":\"evil\\\"\\n\\u001b[2J\""), std::string::npos) << json;
    EXPECT_EQ(detect::alert_line(a, true).find('\x1b'), std::string::npos);
    a.message = "=cmd|' /C calc'!A0";
    EXPECT_NE(detect::alert_csv(a, true).find(",'=cmd"), std::string::npos);
}

TEST(DetectOptions, FlagsAreValidatedWhenParsed) {
    auto parse = [](std::vector<std::string> args) {
        args.insert(args.begin(), "flowtop");
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        return ui::parse_options(static_cast<int>(argv.size()), argv.data());
    };
    auto o = parse({"--detect", "scan.ports=20", "--allow-country", "nl,de", "--alerts-only"});
    EXPECT_EQ(o.detect_settings,
              (std::vector<std::string>{"scan.ports=20", "country.allow=NL,DE"}));
    EXPECT_TRUE(o.alerts_only);
    EXPECT_TRUE(o.batch);
    EXPECT_THROW(parse({"--detect", "scan.ports=many"}), UsageError);
    EXPECT_THROW(parse({"--detect", "nosuch=1"}), UsageError);
    EXPECT_THROW(parse({"--alert-exec-shell"}), UsageError);
    EXPECT_THROW(parse({"--no-detect", "--alerts-only"}), UsageError);
    EXPECT_TRUE(parse({"--detect", "help"}).show_detect_help);
}
