#include <gtest/gtest.h>
#include <netinet/in.h>

#include <set>
#include <sstream>

#include "flowtop/ui/top_renderer.hpp"
#include "flowtop/ui/view_model.hpp"

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
        std::set<std::uint32_t> a(forward.begin(), forward.end()), b(backward.begin(), backward.end());
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
    EXPECT_NE(text.find("\u2191BYTES"), std::string::npos) << "both directions' bytes fit 80 columns";
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
    EXPECT_EQ(narrow.find("PROCESS"), std::string::npos);
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
                            "T U D I S", "active", "bits", "window", "cumulative", "bars"})
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
