#include "flowtop/ui/view_model.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <set>
#include <sstream>

#include "flowtop/ui/top_renderer.hpp"

using namespace flowtop;
using ui::SortKey;
using ui::Tab;
using ui::ViewModel;

namespace {

// A frame of n TCP flows: flow i sends i kB/s out and (n - i) kB/s back.
table::SnapshotPtr frame(int n, std::uint64_t seq = 1, int skip_id = -1) {
    auto s = std::make_shared<table::Snapshot>();
    auto pool = std::make_shared<StringPool>();
    s->strings = pool;
    s->stats.seq = seq;
    s->stats.time_ns = 1'800'000'000'000'000'000ull;
    for (int i = 1; i <= n; ++i) {
        if (i == skip_id) continue;
        table::FlowRow r{};
        r.ct.id = static_cast<std::uint32_t>(i);
        r.ct.family = Family::ipv4;
        r.ct.proto = i % 3 == 0 ? IPPROTO_UDP : IPPROTO_TCP;
        r.ct.tcp_state = 3;
        r.ct.orig.src = parse_addr("192.0.2.1")->first;
        r.ct.orig.dst = parse_addr("198.51.100." + std::to_string(i % 250))->first;
        r.ct.orig.sport = static_cast<std::uint16_t>(40000 + i);
        r.ct.orig.dport = static_cast<std::uint16_t>(i % 2 ? 443 : 22);
        r.ct.has_counters = true;
        r.ct.orig_counters = {static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(i) * 1000};
        r.ct.reply_counters = {1, static_cast<std::uint64_t>(n - i) * 10};
        r.rate_known = true;
        r.orig_rate = i * 1000.0 * static_cast<double>(seq);
        r.reply_rate = (n - i) * 1000.0;
        r.first_seen_ns = s->stats.time_ns - static_cast<std::uint64_t>(i) * 1'000'000'000ull;
        r.comm = pool->intern(i % 2 ? "curl" : "sshd");
        r.pid = i % 2 ? 100 : 200;
        r.dst_country = pool->intern(i % 4 == 0 ? "JP" : "NL");
        s->rows.push_back(r);
    }
    return s;
}

std::vector<std::uint32_t> ids(const ViewModel& m) {
    std::vector<std::uint32_t> out;
    for (auto* r : m.rows()) out.push_back(r->ct.id);
    return out;
}

}  // namespace

TEST(ViewModel, SortsOnEveryColumnWithStableTies) {
    for (SortKey key : ui::sort_keys()) {
        ViewModel m;
        m.settings().sort = key;
        m.offer(frame(50));
        m.refresh(50);
        ASSERT_EQ(m.rows().size(), 50u) << ui::sort_key_name(key);
        // Reversing gives the exact opposite order (ties are broken the same way).
        auto forward = ids(m);
        m.settings().reverse = true;
        m.refresh(50);
        auto backward = ids(m);
        std::set<std::uint32_t> a(forward.begin(), forward.end()),
            b(backward.begin(), backward.end());
        EXPECT_EQ(a.size(), 50u);
        EXPECT_EQ(a, b);
    }
    ViewModel m;
    m.settings().sort = SortKey::orig_rate;
    m.offer(frame(10));
    m.refresh(10);
    EXPECT_EQ(ids(m).front(), 10u);  // the biggest sender first
    m.settings().sort = SortKey::reply_rate;
    m.refresh(10);
    EXPECT_EQ(ids(m).front(), 1u);
}

TEST(ViewModel, PartialSortFillsOnlyTheVisibleRows) {
    ViewModel m;
    m.settings().sort = SortKey::orig_rate;
    m.offer(frame(1000));
    m.refresh(20);
    EXPECT_EQ(m.match_count(), 1000u);
    EXPECT_EQ(m.rows().size(), 20u);
    EXPECT_EQ(m.rows().front()->ct.id, 1000u);
    EXPECT_EQ(m.rows().back()->ct.id, 981u);
}

TEST(ViewModel, SelectionStaysOnTheSameFlowWhenRowsMove) {
    ViewModel m;
    m.settings().sort = SortKey::orig_rate;
    m.offer(frame(30, 1));
    m.refresh(10);
    m.move_selection(3, 10);
    const auto chosen = m.selected_flow()->ct.id;
    // In the next frame another flow overtakes ours: the selection moves with the flow.
    auto next = frame(30, 1, static_cast<int>(chosen) + 1);
    m.offer(next);
    m.refresh(10);
    ASSERT_TRUE(m.selected_flow());
    EXPECT_EQ(m.selected_flow()->ct.id, chosen);
}

TEST(ViewModel, PauseFreezesTheFrame) {
    ViewModel m;
    m.offer(frame(5, 1));
    m.set_paused(true);
    m.offer(frame(7, 2));
    m.refresh(10);
    EXPECT_EQ(m.snapshot()->stats.seq, 1u);
    EXPECT_EQ(m.match_count(), 5u);
    m.set_paused(false);
    m.offer(frame(7, 3));
    m.refresh(10);
    EXPECT_EQ(m.match_count(), 7u);
}

TEST(ViewModel, FilterKeepsTheLastValidExpression) {
    ViewModel m;
    m.offer(frame(10));
    ui::FilterError e;
    ASSERT_TRUE(m.set_filter("port:22", &e));
    m.refresh(10);
    EXPECT_EQ(m.match_count(), 5u);
    EXPECT_FALSE(m.set_filter("port:22 and (", &e));
    EXPECT_FALSE(e.message.empty());
    m.refresh(10);
    EXPECT_EQ(m.filter_text(), "port:22");
    EXPECT_EQ(m.match_count(), 5u);
}

TEST(ViewModel, GroupsByProcessHostAndCountry) {
    ViewModel m;
    m.offer(frame(8));
    m.settings().tab = Tab::processes;
    m.settings().sort = SortKey::flows;
    m.refresh(10);
    ASSERT_EQ(m.groups().size(), 2u);
    EXPECT_EQ(m.groups()[0].flows, 4u);
    EXPECT_EQ(m.groups()[0].filter.rfind("proc:", 0), 0u);
    m.settings().tab = Tab::countries;
    m.refresh(10);
    ASSERT_EQ(m.groups().size(), 2u);
    EXPECT_EQ(m.groups()[0].key, "NL");
    EXPECT_EQ(m.groups()[0].flows, 6u);
    EXPECT_EQ(m.groups()[0].filter, "cc:NL");
    EXPECT_FALSE(m.groups()[0].detail.empty());
    m.settings().tab = Tab::hosts;
    m.refresh(10);
    EXPECT_EQ(m.groups().size(), 8u);
    EXPECT_EQ(m.groups()[0].filter.rfind("host:198.51.100.", 0), 0u);
}

TEST(ViewModel, ProtocolTogglesAndActiveOnly) {
    ViewModel m;
    m.offer(frame(9));
    m.settings().hidden_protos = {IPPROTO_UDP};
    m.refresh(20);
    EXPECT_EQ(m.match_count(), 6u);
    m.settings().hidden_protos.clear();
    m.settings().active_only = true;
    m.refresh(20);
    EXPECT_EQ(m.match_count(), 9u);  // all move traffic
}

namespace {
std::string draw(int w, int h, ViewModel& m, ui::UiState ui = {}) {
    ui::FakeTerminal t(w, h);
    ui.summary.update(*m.snapshot());
    ui::render(t, m, ui);
    return t.text();
}
}  // namespace

TEST(Renderer, LaysOutAt80x24) {
    ViewModel m;
    m.offer(frame(40));
    auto text = draw(80, 24, m);
    EXPECT_NE(text.find("flows 40"), std::string::npos) << text;
    EXPECT_NE(text.find("DESTINATION"), std::string::npos);
    EXPECT_NE(text.find("\u2191RATE"), std::string::npos);
    EXPECT_NE(text.find("\u2193RATE"), std::string::npos);
    EXPECT_NE(text.find("198.51.100.18"), std::string::npos) << text;  // equal rates: by id
    // Issue 16: at 80 columns who and where stay (PROCESS, CC), the totals give way.
    EXPECT_NE(text.find("PROCESS"), std::string::npos) << text;
    EXPECT_NE(text.find(" CC "), std::string::npos) << text;
    EXPECT_EQ(text.find("\u2191BYTES"), std::string::npos) << text;
    EXPECT_NE(text.find("TX "), std::string::npos);
    // Every line fits the width.
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) EXPECT_LE(ui::display_width(line), 80u);
    // 24 rows: header 3, column titles 1, 18 flows, summary and status.
    EXPECT_EQ(m.rows().size(), 18u);
}

TEST(Renderer, WideTerminalShowsMoreColumns) {
    ViewModel m;
    m.offer(frame(40));
    auto text = draw(120, 40, m);
    EXPECT_NE(text.find("PROCESS"), std::string::npos);
    EXPECT_NE(text.find("AGE"), std::string::npos);
    EXPECT_NE(text.find("curl"), std::string::npos);
    auto narrow = draw(80, 24, m);
    EXPECT_NE(narrow.find("PROCESS"), std::string::npos) << narrow;  // issue 16: who stays
    EXPECT_EQ(narrow.find("AGE"), std::string::npos) << narrow;      // the age goes first
}

TEST(Renderer, TooSmallSaysSo) {
    ViewModel m;
    m.offer(frame(5));
    auto text = draw(30, 8, m);
    EXPECT_NE(text.find("terminal too small"), std::string::npos);
}

TEST(Renderer, FilterErrorShowsACaretAtItsColumn) {
    ViewModel m;
    m.offer(frame(5));
    ui::UiState ui;
    ui.prompt = true;
    ui.prompt_text = "port:22 and";
    ui.prompt_error = ui::FilterError{"expression ends too early", 11};
    ui::FakeTerminal t(80, 24);
    ui::render(t, m, ui);
    EXPECT_EQ(t.line(23), "filter: port:22 and");
    EXPECT_EQ(t.line(22).find('^'), std::string("filter: ").size() + 11);
}

TEST(Renderer, HelpListsEveryKey) {
    ViewModel m;
    m.offer(frame(5));
    ui::UiState ui;
    ui.help = true;
    auto text = draw(100, 40, m, ui);
    for (const char* key : {"F10", "F1", "PgUp", "F6", "reverse", "filter", "pause", "Tab",
                            "T U D I S", "active", "bits", "window", "cumulative", "bars", "1 2 3",
                            "units", "reverse DNS", "port numbers", "W  F2"})
        EXPECT_NE(text.find(key), std::string::npos) << key;
}

TEST(Renderer, PausedShowsInTheHeader) {
    ViewModel m;
    m.offer(frame(5));
    m.set_paused(true);
    EXPECT_NE(draw(80, 24, m).find("PAUSED"), std::string::npos);
}

TEST(Renderer, EmptyTableSaysWhy) {
    ViewModel m;
    auto s = std::make_shared<table::Snapshot>();
    s->strings = std::make_shared<StringPool>();
    s->stats.seq = 1;
    s->stats.empty_at_start = true;
    m.offer(s);
    EXPECT_NE(draw(120, 30, m).find("only once a firewall rule"), std::string::npos);
}

TEST(Renderer, SeveralNamespacesGetANetnsColumn) {
    auto s = std::const_pointer_cast<table::Snapshot>(frame(6));
    auto pool = std::const_pointer_cast<StringPool>(s->strings);
    // Pairs of flows share a conntrack id in two namespaces, as --all-netns sees them.
    for (std::size_t i = 0; i < s->rows.size(); ++i) {
        table::FlowRow r = std::as_const(s->rows)[i];
        r.netns = pool->intern(i % 2 ? "blue" : "docker:0123456789ab");
        r.ct.source = static_cast<std::uint16_t>(i % 2);
        r.ct.id = static_cast<std::uint32_t>(i / 2 + 1);
        s->rows[i] = r;
    }
    s->stats.sources = 2;
    ViewModel m;
    m.offer(s);
    auto text = draw(160, 30, m);
    EXPECT_NE(text.find("NETNS"), std::string::npos) << text;
    EXPECT_NE(text.find("blue"), std::string::npos);
    EXPECT_NE(text.find("docker:01234"), std::string::npos);
    EXPECT_NE(text.find("netns 2"), std::string::npos);
    // One namespace: no such column.
    ViewModel single;
    single.offer(frame(6));
    EXPECT_EQ(draw(160, 30, single).find("NETNS"), std::string::npos);
}

TEST(Renderer, HiddenColumnsLeaveTheirRoomToTheOthers) {
    ViewModel m;
    m.offer(frame(10));
    const auto all = draw(120, 40, m);
    ASSERT_NE(all.find("STATE"), std::string::npos);
    ASSERT_NE(all.find("AGE"), std::string::npos);
    ui::UiState ui;
    ui.hidden_columns = {"state", "age", "bytes"};
    const auto text = draw(120, 40, m, ui);
    EXPECT_EQ(text.find("STATE"), std::string::npos) << text;
    EXPECT_EQ(text.find("AGE"), std::string::npos) << text;
    EXPECT_EQ(text.find("\u2191BYTES"), std::string::npos) << text;
    EXPECT_NE(text.find("DESTINATION"), std::string::npos);
    EXPECT_NE(text.find("\u2191RATE"), std::string::npos);
    // At 80 columns the room goes to columns that were dropped before.
    EXPECT_EQ(draw(80, 24, m).find("\u2191BYTES"), std::string::npos);
    ui.hidden_columns = {"process", "state", "age"};
    EXPECT_NE(draw(80, 24, m, ui).find("\u2191BYTES"), std::string::npos) << draw(80, 24, m, ui);
}

TEST(Renderer, PortNumbersAndAddressesOnRequest) {
    auto s = std::const_pointer_cast<table::Snapshot>(frame(1));
    auto pool = std::const_pointer_cast<StringPool>(s->strings);
    table::FlowRow r = std::as_const(s->rows)[0];  // to 198.51.100.1 port 443
    r.dst_name = pool->intern("www.example.net");
    r.service = pool->intern("https");
    s->rows[0] = r;
    ViewModel m;
    m.offer(s);
    const auto named = draw(120, 30, m);
    EXPECT_NE(named.find("www.example.net"), std::string::npos) << named;
    EXPECT_NE(named.find(" https "), std::string::npos) << named;
    ui::UiState ui;
    ui.port_numbers = true;  // key N
    ui.names = false;        // key n
    const auto text = draw(120, 30, m, ui);
    EXPECT_EQ(text.find("www.example.net"), std::string::npos) << text;
    EXPECT_NE(text.find("198.51.100.1 "), std::string::npos) << text;
    EXPECT_EQ(text.find(" https "), std::string::npos) << text;
    EXPECT_NE(text.find(" 443 "), std::string::npos) << text;
}

namespace {
// Every line of a frame within the width.
void expect_within(const std::string& text, std::size_t width) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        EXPECT_LE(ui::display_width(line), width) << line;
}
}  // namespace

TEST(Renderer, EndHostAt80x24KeepsProcessCountryAndRatesAndAbbreviatesTheState) {
    ViewModel m;
    m.offer(frame(40));
    const auto text = draw(80, 24, m);
    expect_within(text, 80);
    for (const char* title :
         {"PROTO", "STATE", "DESTINATION", "PORT", "PROCESS", "CC", "\u2191RATE", "\u2193RATE"})
        EXPECT_NE(text.find(title), std::string::npos) << title << " in\n" << text;
    EXPECT_NE(text.find("ESTAB "), std::string::npos) << text;  // abbreviated, not dropped
    EXPECT_EQ(text.find("ESTABLISHED"), std::string::npos) << text;
    EXPECT_NE(text.find("curl"), std::string::npos) << text;
    EXPECT_NE(text.find(" NL "), std::string::npos) << text;
    // The first header line keeps the rates (it was cut at 80 columns).
    ui::FakeTerminal t(80, 24);
    ui::UiState ui;
    ui.summary.update(*m.snapshot());
    ui::render(t, m, ui);
    EXPECT_NE(t.line(0).find("\u2193 "), std::string::npos) << t.line(0);
    EXPECT_NE(t.line(0).find("flows 40"), std::string::npos) << t.line(0);
    // With s the source comes in and the state gives way; who and where stay.
    ui.show_source = true;
    const auto with_source = draw(80, 24, m, ui);
    expect_within(with_source, 80);
    for (const char* title : {"SOURCE", "DESTINATION", "PROCESS", "CC", "\u2191RATE"})
        EXPECT_NE(with_source.find(title), std::string::npos) << title << " in\n" << with_source;
    // Wide: everything, the state in full.
    const auto wide = draw(120, 40, m);
    EXPECT_NE(wide.find("ESTABLISHED"), std::string::npos);
    EXPECT_NE(wide.find("AGE"), std::string::npos);
}

TEST(Renderer, RouterAt80x24NamesTheLanClientWhereTheProcessWouldBe) {
    auto s = std::const_pointer_cast<table::Snapshot>(frame(6));
    auto pool = std::const_pointer_cast<StringPool>(s->strings);
    for (auto& r : s->rows) {
        r.pid = 0;
        r.comm = k_no_string;
        r.forwarded = r.forwarded_known = true;
        r.ct.orig.src = parse_addr(r.ct.id % 2 ? "192.0.2.10" : "192.0.2.11")->first;
        r.ct.reply.src = r.ct.orig.dst;
        r.ct.reply.dst = parse_addr("203.0.113.7")->first;  // masqueraded
        if (r.ct.id % 2 == 0) r.src_name = pool->intern("desk.lan");
    }
    LocalAddresses router;
    router.add(Family::ipv4, parse_addr("192.0.2.254")->first);
    router.add(Family::ipv4, parse_addr("203.0.113.7")->first);
    router.add_network(*parse_network("192.0.2.0/24"));
    ViewModel m(router);
    m.offer(s);
    const auto text = draw(80, 24, m);
    expect_within(text, 80);
    EXPECT_NE(text.find("CLIENT"), std::string::npos) << text;
    EXPECT_NE(text.find("192.0.2.10"), std::string::npos) << text;
    EXPECT_NE(text.find("desk.lan"), std::string::npos) << text;  // its reverse DNS name
    EXPECT_NE(text.find(" CC "), std::string::npos) << text;
    EXPECT_EQ(text.find("(forwarded)"), std::string::npos) << text;
}
