// The router's view with fakes: NAT in the rows, JSON and details, offloaded flows, country
// names, and deleting a flow (the refusal rules and --delete-matching with a fake deleter).
// The real kernel's side is tests/netns/nat_test.cpp.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <sstream>
#include <thread>

#include "flowtop/ui/flow_delete.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/top_renderer.hpp"
#include "flowtop/ui/view_model.hpp"
#include "flowtop/util/error.hpp"

using namespace flowtop;

namespace {

constexpr const char* k_wan = "198.51.100.254";

table::FlowRow tcp(std::uint32_t id, const char* src, const char* dst, std::uint16_t sport,
                   std::uint16_t dport) {
    table::FlowRow r{};
    r.ct.id = id;
    r.ct.family = Family::ipv4;
    r.ct.proto = IPPROTO_TCP;
    r.ct.tcp_state = 3;
    r.ct.has_status = true;
    r.ct.status = 0xe;  // SEEN_REPLY, ASSURED, CONFIRMED
    r.ct.orig = {parse_addr(src)->first, parse_addr(dst)->first, sport, dport};
    r.ct.reply = {r.ct.orig.dst, r.ct.orig.src, dport, sport};
    r.ct.has_counters = true;
    r.ct.orig_counters = {10, 1000};
    r.ct.reply_counters = {10, 2000};
    r.rate_known = true;
    r.orig_rate = 500;
    r.reply_rate = 700;
    return r;
}

// A LAN client masqueraded to the WAN address, a port forward to it, and an IPv4 flow the
// router itself makes, without NAT.
table::SnapshotPtr router_frame() {
    auto s = std::make_shared<table::Snapshot>();
    auto pool = std::make_shared<StringPool>();
    s->strings = pool;
    s->stats.seq = 2;
    s->stats.time_ns = 1'800'000'000'000'000'000ull;
    auto snat = tcp(1, "192.0.2.1", "203.0.113.9", 40000, 443);
    snat.ct.reply.dst = parse_addr(k_wan)->first;
    snat.ct.reply.dport = 61000;
    snat.ct.status |= ct::k_status_src_nat;
    snat.dst_country = pool->intern("NL");
    snat.dst_country_name = pool->intern("Netherlands");
    auto dnat = tcp(2, "203.0.113.7", k_wan, 50000, 8080);
    dnat.ct.reply.src = parse_addr("192.0.2.10")->first;
    dnat.ct.reply.sport = 80;
    dnat.ct.status |= ct::k_status_dst_nat;
    auto plain = tcp(3, k_wan, "203.0.113.20", 41000, 22);
    plain.orig_rate = plain.reply_rate = 100;
    s->rows.push_back(snat);
    s->rows.push_back(dnat);
    s->rows.push_back(plain);
    return s;
}

std::string draw(int w, int h, ui::ViewModel& m, ui::UiState ui = {}) {
    ui::FakeTerminal t(w, h);
    ui.summary.update(*m.snapshot());
    ui::render(t, m, ui);
    return t.text();
}

std::string line_with(const std::string& text, const std::string& needle) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.find(needle) != std::string::npos) return line;
    return "";
}

ui::FieldValue field(const table::Snapshot& snap, const table::FlowRow& row, const char* key) {
    std::vector<ui::Field> fields;
    ui::flow_fields(snap, row, fields);
    for (auto& f : fields)
        if (std::string(f.key) == key) return f.value;
    ADD_FAILURE() << "no field " << key;
    return ui::Null{};
}

}  // namespace

TEST(RouterView, JsonFieldsSayWhatNatDidAndKeepTheReplyTuple) {
    auto s = router_frame();
    const auto& rows = s->rows;
    EXPECT_EQ(std::get<std::string>(field(*s, rows[0], "nat")), "snat");
    EXPECT_EQ(std::get<std::string>(field(*s, rows[0], "reply_dst")), k_wan);
    EXPECT_EQ(std::get<std::uint64_t>(field(*s, rows[0], "reply_dport")), 61000u);
    EXPECT_EQ(std::get<std::string>(field(*s, rows[1], "nat")), "dnat");
    EXPECT_EQ(std::get<std::string>(field(*s, rows[1], "reply_src")), "192.0.2.10");
    EXPECT_TRUE(std::holds_alternative<ui::Null>(field(*s, rows[2], "nat")));
    EXPECT_EQ(std::get<bool>(field(*s, rows[2], "offloaded")), false);
    EXPECT_EQ(std::get<std::string>(field(*s, rows[0], "dst_country_name")), "Netherlands");
    EXPECT_TRUE(std::holds_alternative<ui::Null>(field(*s, rows[1], "dst_country_name")));
    auto both = rows[0];
    both.ct.status |= ct::k_status_dst_nat;
    EXPECT_EQ(std::get<std::string>(field(*s, both, "nat")), "both");
}

TEST(RouterView, NatColumnAndTranslatedEndpointsFitAt80Columns) {
    ui::ViewModel m;
    m.offer(router_frame());
    const auto text = draw(80, 24, m);
    EXPECT_NE(line_with(text, "DESTINATION").find(" NAT "), std::string::npos) << text;
    EXPECT_NE(line_with(text, "203.0.113.9").find(" snat "), std::string::npos) << text;
    EXPECT_NE(line_with(text, "192.0.2.10").find(" dnat "), std::string::npos) << text;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) EXPECT_LE(ui::display_width(line), 80u);
    // What does not fit whole is left out, never cut: the forward keeps its target.
    EXPECT_NE(line_with(text, " dnat ").find("\u2192192.0.2.10:80 "), std::string::npos) << text;
    EXPECT_EQ(text.find("via 198.51"), std::string::npos) << "no half address: " << text;
    // Wide: the whole translation in the cells.
    const auto wide = draw(200, 24, m);
    EXPECT_NE(wide.find(std::string("203.0.113.9 via ") + k_wan + ":61000"), std::string::npos)
        << wide;
    EXPECT_NE(wide.find(std::string(k_wan) + "\u2192192.0.2.10:80"), std::string::npos) << wide;
    ui::UiState source;
    source.show_source = true;
    const auto with_source = draw(200, 24, m, source);
    EXPECT_NE(with_source.find(std::string("192.0.2.1\u2192") + k_wan + ":61000"),
              std::string::npos)
        << with_source;
}

TEST(RouterView, HideColumnsNatHidesTheNatColumn) {
    ui::ViewModel m;
    m.offer(router_frame());
    ui::UiState ui;
    ui.hidden_columns = {"nat"};
    const auto text = draw(120, 24, m, ui);
    EXPECT_EQ(line_with(text, "DESTINATION").find(" NAT "), std::string::npos) << text;
    EXPECT_EQ(line_with(text, "203.0.113.9").find(" snat "), std::string::npos) << text;
}

TEST(RouterView, EndHostWithoutNatKeepsItsColumns) {
    auto s = std::make_shared<table::Snapshot>();
    s->strings = std::make_shared<StringPool>();
    s->stats.seq = 1;
    s->rows.push_back(tcp(1, "192.0.2.1", "203.0.113.9", 40000, 443));
    ui::ViewModel m;
    m.offer(s);
    EXPECT_EQ(draw(120, 24, m).find(" NAT "), std::string::npos);
}

TEST(RouterView, DetailPanelShowsBothSidesOfTheRouter) {
    ui::ViewModel m;
    m.offer(router_frame());
    m.refresh(10);
    ui::UiState ui;
    ui.detail = true;
    // The busiest first: the masqueraded flow.
    ASSERT_EQ(m.selected_flow()->ct.id, 1u);
    const auto text = draw(120, 40, m, ui);
    EXPECT_NE(text.find("before snat: 192.0.2.1:40000 \u2192 203.0.113.9:443"), std::string::npos)
        << text;
    EXPECT_NE(text.find(std::string("after: ") + k_wan + ":61000 \u2192 203.0.113.9:443"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("dst_country_name: Netherlands"), std::string::npos) << text;
    // At 80 columns half the width cannot hold a tuple: one above the other, aligned.
    const auto narrow = draw(80, 24, m, ui);
    EXPECT_NE(narrow.find("before snat: 192.0.2.1:40000 \u2192 203.0.113.9:443\n"),
              std::string::npos)
        << narrow;
    EXPECT_NE(narrow.find(std::string("\n      after: ") + k_wan + ":61000 \u2192 203.0.113.9:443"),
              std::string::npos)
        << narrow;
}

TEST(RouterView, OffloadedFlowsAreMarkedAndTheirZeroRateIsStaleNotIdle) {
    auto s = std::const_pointer_cast<table::Snapshot>(router_frame());
    auto r = std::as_const(s->rows)[2];
    r.ct.status |= ct::k_status_offload;
    r.orig_rate = r.reply_rate = 0;
    s->rows[2] = r;
    s->stats.offloaded_flows = 1;
    ui::ViewModel m;
    m.offer(s);
    const auto text = draw(120, 24, m);
    const auto line = line_with(text, "203.0.113.20");
    EXPECT_NE(line.find("OFFLOAD "), std::string::npos) << text;
    EXPECT_NE(line.find("stale"), std::string::npos) << text;
    EXPECT_EQ(line.find("0 B/s"), std::string::npos) << text;
    EXPECT_NE(text.find("1 offloaded: counters may be stale"), std::string::npos) << text;
    EXPECT_EQ(std::get<bool>(field(*s, r, "offloaded")), true);
    auto hw = r;
    hw.ct.status = ct::k_status_hw_offload;
    EXPECT_TRUE(ct::offloaded(hw.ct));
}

TEST(RouterView, CountriesTabNamesTheCountryWhereThereIsRoom) {
    ui::ViewModel m;
    m.offer(router_frame());
    m.settings().tab = ui::Tab::countries;
    const auto text = draw(100, 24, m);
    EXPECT_NE(text.find("NL Netherlands"), std::string::npos) << text;
}

TEST(RouterView, DeletePromptSaysTheHostsAreNotBlocked) {
    ui::ViewModel m;
    m.offer(router_frame());
    ui::UiState ui;
    ui.confirm =
        "Delete the conntrack entry of tcp 192.0.2.1:40000 -> 203.0.113.9:443?\ny: delete "
        "(this does not block the hosts: the kernel forgets the state)";
    const auto text = draw(80, 24, m, ui);
    EXPECT_NE(text.find("Delete the conntrack entry of tcp 192.0.2.1:40000"), std::string::npos);
    EXPECT_NE(text.find("does not block the hosts"), std::string::npos) << text;
}

TEST(FlowDelete, SummaryNamesBothSidesOfNat) {
    auto s = router_frame();
    EXPECT_EQ(ui::flow_summary(s->rows[0].ct),
              std::string("tcp 192.0.2.1:40000 -> 203.0.113.9:443 as ") + k_wan +
                  ":61000 -> 203.0.113.9:443");
    EXPECT_EQ(ui::flow_summary(s->rows[2].ct),
              std::string("tcp ") + k_wan + ":41000 -> 203.0.113.20:22");
    EXPECT_EQ(ui::delete_outcome(0), "deleted");
    EXPECT_EQ(ui::delete_outcome(ENOENT), "gone already");
    EXPECT_EQ(ui::delete_outcome(EPERM).rfind("failed: ", 0), 0u);
}

TEST(FlowDelete, RefusesEndedRowsAndStaleRowsWhilePaused) {
    auto shown = router_frame();
    const auto& row = shown->rows[0];
    EXPECT_EQ(ui::delete_refusal(row, false, shown.get()), "");
    EXPECT_EQ(ui::delete_refusal(row, true, shown.get()), "") << "paused, but still the same";
    auto gone = row;
    gone.gone = true;
    EXPECT_NE(ui::delete_refusal(gone, false, shown.get()), "");
    // The latest frame no longer has it, or has another flow under its id.
    auto later = std::make_shared<table::Snapshot>();
    later->strings = shown->strings;
    EXPECT_NE(ui::delete_refusal(row, true, later.get()).find("stale"), std::string::npos);
    auto reused = row;
    reused.ct.orig.sport = 40001;
    later->rows.push_back(reused);
    EXPECT_NE(ui::delete_refusal(row, true, later.get()).find("stale"), std::string::npos);
}

namespace {
// Runs --delete-matching over one published frame with a fake deleter; returns its stdout.
std::string run_delete(const std::vector<std::string>& args, std::vector<std::uint32_t>& deleted,
                       int fail_with = 0, int* status = nullptr) {
    std::vector<char*> argv{const_cast<char*>("flowtop")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    const auto options = ui::parse_options(static_cast<int>(argv.size()), argv.data());
    table::SnapshotHub hub;
    hub.publish(router_frame());  // seq 2: settled
    std::FILE* out = std::tmpfile();
    const int st = ui::run_delete_matching(
        hub, options,
        [&](const ct::FlowRecord& f) {
            deleted.push_back(f.id);
            return fail_with;
        },
        out);
    if (status) *status = st;
    std::rewind(out);
    std::string text;
    for (int c; (c = std::fgetc(out)) != EOF;) text += static_cast<char>(c);
    std::fclose(out);
    return text;
}
}  // namespace

TEST(FlowDelete, DeleteMatchingIsADryRunUnlessYes) {
    std::vector<std::uint32_t> deleted;
    auto out = run_delete({"--delete-matching", "nat:snat or nat:dnat"}, deleted);
    EXPECT_TRUE(deleted.empty()) << "a dry run deletes nothing";
    EXPECT_NE(out.find("would delete: tcp 192.0.2.1:40000"), std::string::npos) << out;
    EXPECT_NE(out.find("would delete: tcp 203.0.113.7:50000"), std::string::npos) << out;
    EXPECT_EQ(out.find(":22"), std::string::npos) << out;
    out = run_delete({"--delete-matching", "nat:snat or nat:dnat", "--yes"}, deleted);
    EXPECT_EQ(deleted, (std::vector<std::uint32_t>{1, 2}));
    EXPECT_NE(out.find("deleted: tcp 192.0.2.1:40000"), std::string::npos) << out;
    // JSON: the flow's object with what came of it.
    deleted.clear();
    int status = -1;
    out = run_delete({"--delete-matching", "port:22", "--yes", "-o", "json"}, deleted, ENOENT,
                     &status);
    EXPECT_EQ(status, 0) << "an entry gone already is no failure";
    EXPECT_NE(out.find("\"delete\":\"gone\""), std::string::npos) << out;
    out = run_delete({"--delete-matching", "port:22", "--yes"}, deleted, EPERM, &status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("failed: "), std::string::npos) << out;
}

TEST(FlowDelete, OptionsCheckTheExpressionAndTheCombinations) {
    auto parse = [](std::vector<std::string> args) {
        std::vector<char*> argv{const_cast<char*>("flowtop")};
        for (auto& a : args) argv.push_back(a.data());
        return ui::parse_options(static_cast<int>(argv.size()), argv.data());
    };
    EXPECT_THROW(parse({"--delete-matching", "nat:masq"}), UsageError);
    EXPECT_THROW(parse({"--delete-matching", " "}), UsageError);
    EXPECT_THROW(parse({"--yes"}), UsageError);
    EXPECT_THROW(parse({"--delete-matching", "tcp", "--all-netns"}), UsageError);
    EXPECT_THROW(parse({"--delete-matching", "tcp", "--daemon"}), UsageError);
    const auto o = parse({"--delete-matching", "nat:dnat", "--yes"});
    EXPECT_TRUE(o.yes);
    EXPECT_FALSE(o.delete_expr.empty());
}

TEST(RouterView, TableTabPutsTheBusiestSourceOnTopWithItsShare) {
    // A burst of UNREPLIED UDP from one client beside one ordinary flow: the table's use is
    // in the header and the client heads the Table tab with its share of all entries.
    auto s = std::const_pointer_cast<table::Snapshot>(router_frame());
    for (std::uint32_t i = 0; i < 9; ++i) {
        auto r =
            tcp(100 + i, "192.0.2.77", "203.0.113.50", static_cast<std::uint16_t>(30000 + i), 53);
        r.ct.proto = IPPROTO_UDP;
        r.ct.tcp_state = 0;
        r.ct.status = 0x8;  // CONFIRMED only: nothing came back
        s->rows.push_back(r);
    }
    s->stats.ct_known = true;
    s->stats.ct_count = 12;
    s->stats.ct_max = 65536;
    s->stats.ct_fullest = 12.0 / 65536;
    ui::ViewModel m;
    m.offer(s);
    m.settings().tab = ui::Tab::table;
    const auto text = draw(80, 24, m);
    EXPECT_NE(text.find("ct 12/65536"), std::string::npos) << text;
    const auto header = line_with(text, "CONSUMER");
    ASSERT_FALSE(header.empty()) << text;
    EXPECT_NE(header.find("ENTRIES"), std::string::npos) << text;
    EXPECT_NE(header.find("SHARE"), std::string::npos) << text;
    // The first row under the header is the client: 9 of 12 entries.
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line) && line.find("CONSUMER") == std::string::npos) {
    }
    ASSERT_TRUE(std::getline(in, line)) << text;
    EXPECT_NE(line.find("source"), std::string::npos) << text;
    EXPECT_NE(line.find("192.0.2.77"), std::string::npos) << text;
    EXPECT_NE(line.find(" 9 "), std::string::npos) << text;
    EXPECT_NE(line.find("75%"), std::string::npos) << text;
    EXPECT_NE(line_with(text, "UNREPLIED").find("75%"), std::string::npos) << text;
    EXPECT_NE(line_with(text, "udp").find("75%"), std::string::npos) << text;
    std::istringstream all(text);
    for (std::string l; std::getline(all, l);) EXPECT_LE(ui::display_width(l), 80u);
}
