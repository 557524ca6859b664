#include "flowtop/export/prometheus.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>

#include "flowtop/export/ipfix.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::exporters {
namespace {

constexpr const char* k_folded_names[] = {"dst_country", "service", "comm", "netns", "series"};

std::uint64_t monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

// Waits until fd is ready for `events` or the deadline (monotonic ms) passes.
bool wait_fd(int fd, short events, std::uint64_t deadline_ms) {
    for (;;) {
        const auto now = monotonic_ms();
        if (now >= deadline_ms) return false;
        pollfd p{fd, events, 0};
        const int rc = os::poll(&p, 1, static_cast<int>(deadline_ms - now));
        if (rc > 0) return true;
        if (rc == 0) return false;
        if (errno != EINTR) return false;
    }
}

bool write_all(int fd, std::string_view data, std::uint64_t deadline_ms) {
    while (!data.empty()) {
        const ssize_t n = os::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline_ms))
            continue;
        return false;
    }
    return true;
}

void help(std::string& out, const char* name, const char* type, const char* text) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += text;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, std::uint64_t v) {
    out += name;
    if (!labels.empty()) out += '{' + labels + '}';
    out += ' ';
    out += std::to_string(v);
    out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out += name;
    if (!labels.empty()) out += '{' + labels + '}';
    out += ' ';
    out += buf;
    out += '\n';
}

std::string proto_label(std::uint8_t proto) {
    const char* name = ct::proto_name(proto);
    return name ? name : std::to_string(proto);
}

}  // namespace

std::string prometheus_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::size_t PrometheusExporter::KeyHash::operator()(const SeriesKey& k) const noexcept {
    std::uint64_t h = k.family * 0x9e3779b97f4a7c15ull ^ k.proto;
    for (StrId v : {k.dst_country, k.service, k.comm, k.netns})
        h = (h ^ v) * 0x100000001b3ull + (h >> 29);
    return static_cast<std::size_t>(h);
}

PrometheusExporter::PrometheusExporter(const table::SnapshotHub& hub, PrometheusConfig config)
    : hub_(hub), config_(std::move(config)) {
    const auto target = parse_target(config_.listen, "--prometheus", "127.0.0.1", false);
    listen_.reset(::socket(target.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listen_) throw Error(errno_message("--prometheus: cannot make a socket", errno));
    int one = 1;
    setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_.get(), reinterpret_cast<const sockaddr*>(target.addr.data()),
             static_cast<socklen_t>(target.addr.size())) != 0)
        throw Error(errno_message("--prometheus: cannot listen on " + config_.listen, errno));
    if (::listen(listen_.get(), 16) != 0)
        throw Error(errno_message("--prometheus: cannot listen on " + config_.listen, errno));
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    published_.store(std::make_shared<const Published>());
}

PrometheusExporter::~PrometheusExporter() {
    if (thread_.joinable()) {
        thread_.request_stop();
        thread_.join();
    }
}

void PrometheusExporter::start() {
    thread_ = signals::crash_safe_thread([this](std::stop_token stop) { serve(stop); });
}

StrId PrometheusExporter::capped(int label, StrId value) {
    if (value == k_no_string) return value;
    auto& values = values_[label];
    if (values.contains(value)) return value;
    if (values.size() < config_.max_label_values) {
        values.insert(value);
        return value;
    }
    ++mine_.folded[label];
    return k_other_label;
}

std::uint32_t PrometheusExporter::series_of(const table::FlowRow& row) {
    SeriesKey key{.family = static_cast<std::uint8_t>(row.ct.family),
                  .proto = row.ct.proto,
                  .dst_country = capped(0, row.dst_country),
                  .service = capped(1, row.service),
                  .comm = capped(2, row.comm),
                  .netns = config_.netns_label ? capped(3, row.netns) : k_no_string};
    auto it = index_.find(key);
    if (it != index_.end()) return it->second;
    if (index_.size() >= config_.max_series) {
        // Past the cap every new label set lands in one per family and protocol.
        ++mine_.folded[4];
        key.dst_country = key.service = key.comm = k_other_label;
        if (config_.netns_label) key.netns = k_other_label;
        if (auto other = index_.find(key); other != index_.end()) return other->second;
    }
    const auto i = static_cast<std::uint32_t>(mine_.keys.size());
    index_.emplace(key, i);
    mine_.keys.push_back(key);
    mine_.totals.push_back({});
    return i;
}

void PrometheusExporter::on_tick(table::TickContext& tick) {
    bool dirty = false;
    auto account = [&](ct::FlowKey key) {
        const table::FlowRow* row = tick.find(key);
        if (!row) return;
        if (row->has_counters()) {
            Seen& seen = seen_[key];
            const auto& o = row->ct.orig_counters;
            const auto& r = row->ct.reply_counters;
            if (o != seen.orig || r != seen.reply) {
                auto& t = mine_.totals[series_of(*row)];
                // Counters only grow; a smaller value (a re-used id) counts from zero.
                auto add = [](ct::Counters& total, const ct::Counters& now,
                              const ct::Counters& before) {
                    total.bytes += now.bytes >= before.bytes ? now.bytes - before.bytes : now.bytes;
                    total.packets +=
                        now.packets >= before.packets ? now.packets - before.packets : now.packets;
                };
                add(t.orig, o, seen.orig);
                add(t.reply, r, seen.reply);
                seen.orig = o;
                seen.reply = r;
                dirty = true;
            }
        }
        // A key can be in updated and ended both: forget it only after every list was seen.
        if (row->gone) gone_.push_back(key);
    };
    const auto& changes = tick.changes();
    for (const auto key : changes.created) account(key);
    for (const auto key : changes.updated) account(key);
    for (const auto key : changes.ended) account(key);
    for (const auto key : gone_) seen_.erase(key);
    gone_.clear();
    // Flows that left without a last change (closed earlier, then gone from a dump) leave an
    // entry behind; a look every 30 s costs one lookup per tracked flow.
    if (tick.now_ns() > last_gc_ns_ + 30'000'000'000ull) {
        last_gc_ns_ = tick.now_ns();
        std::erase_if(seen_, [&](const auto& entry) { return !tick.find(entry.first); });
    }
    if (dirty) published_.store(std::make_shared<const Published>(mine_));
}

std::string PrometheusExporter::render() const {
    const auto started = std::chrono::steady_clock::now();
    std::string out;
    out.reserve(16384);
    const auto frame = hub_.latest();
    const auto series = published_.load();
    table::FrameStats s;
    if (frame) s = frame->stats;
    auto label_value = [&](StrId id) -> std::string {
        if (id == k_other_label) return "other";
        if (id == k_no_string || !frame) return "";
        return prometheus_escape(frame->str(id));
    };

    help(out, "flowtop_bytes_total", "counter",
         "Bytes counted by conntrack since flowtop started, flows that ended included.");
    sample(out, "flowtop_bytes_total", "direction=\"orig\"", s.orig_bytes_total);
    sample(out, "flowtop_bytes_total", "direction=\"reply\"", s.reply_bytes_total);
    ct::Counters orig_sum{}, reply_sum{};
    for (const auto& t : series->totals) {
        orig_sum.packets += t.orig.packets;
        reply_sum.packets += t.reply.packets;
    }
    help(out, "flowtop_packets_total", "counter",
         "Packets counted by conntrack since flowtop started, flows that ended included.");
    sample(out, "flowtop_packets_total", "direction=\"orig\"", orig_sum.packets);
    sample(out, "flowtop_packets_total", "direction=\"reply\"", reply_sum.packets);

    std::vector<std::string> labels(series->keys.size());
    for (std::size_t i = 0; i < series->keys.size(); ++i) {
        const auto& k = series->keys[i];
        std::string l = "family=\"ipv";
        l += k.family == 6 ? '6' : '4';
        l += "\",protocol=\"" + proto_label(k.proto) + "\",dst_country=\"" +
             label_value(k.dst_country) + "\",service=\"" + label_value(k.service) + "\",comm=\"" +
             label_value(k.comm) + '"';
        if (config_.netns_label) l += ",netns=\"" + label_value(k.netns) + '"';
        labels[i] = std::move(l);
    }
    const struct {
        const char* name;
        const char* text;
        bool bytes;
    } flow_metrics[] = {
        {"flowtop_flow_bytes_total",
         "Bytes by direction and flow labels (bounded, see flowtop(8)).", true},
        {"flowtop_flow_packets_total", "Packets by direction and flow labels (bounded).", false},
    };
    for (const auto& m : flow_metrics) {
        help(out, m.name, "counter", m.text);
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const auto& t = series->totals[i];
            sample(out, m.name, "direction=\"orig\"," + labels[i],
                   m.bytes ? t.orig.bytes : t.orig.packets);
            sample(out, m.name, "direction=\"reply\"," + labels[i],
                   m.bytes ? t.reply.bytes : t.reply.packets);
        }
    }
    help(out, "flowtop_label_folded_total", "counter",
         "Flow updates whose label value was folded into \"other\" by the cardinality cap.");
    for (int l = 0; l < 5; ++l)
        sample(out, "flowtop_label_folded_total", std::string("label=\"") + k_folded_names[l] + '"',
               series->folded[l]);

    // Current flows: one pass over the latest frame, on this thread.
    std::map<std::string, std::uint64_t> flows;
    if (frame) {
        for (const auto& row : frame->rows) {
            if (row.gone) continue;
            const char* state = row.ct.proto == 6 ? ct::tcp_state_name(row.ct.tcp_state) : nullptr;
            std::string l = std::string("family=\"ipv") +
                            (row.ct.family == Family::ipv6 ? '6' : '4') + "\",protocol=\"" +
                            proto_label(row.ct.proto) + "\",state=\"" +
                            (state ? state : (row.closed ? "CLOSED" : "none")) + '"';
            ++flows[l];
        }
    }
    help(out, "flowtop_flows", "gauge", "Flows in the conntrack table now, by state.");
    for (const auto& [l, n] : flows) sample(out, "flowtop_flows", l, n);

    const struct {
        const char* name;
        const char* type;
        const char* text;
        std::uint64_t value;
    } simple[] = {
        {"flowtop_events_total", "counter", "Conntrack events received.", s.events},
        {"flowtop_lost_events_total", "counter",
         "Times the kernel reported lost conntrack events (ENOBUFS).", s.lost_events},
        {"flowtop_resyncs_total", "counter", "Full dumps made to heal lost events.", s.resyncs},
        {"flowtop_dumps_total", "counter", "Full dumps of the conntrack table.", s.dumps},
        {"flowtop_frames_total", "counter", "Ticks of the writer.", s.seq},
        {"flowtop_namespaces", "gauge", "Conntrack tables watched.", s.sources},
        {"flowtop_accounting_enabled", "gauge", "nf_conntrack_acct is on (1) or off (0).",
         s.acct_on ? 1u : 0u},
        {"flowtop_timestamps_enabled", "gauge", "nf_conntrack_timestamp is on (1) or off (0).",
         s.timestamp_on ? 1u : 0u},
    };
    for (const auto& m : simple) {
        help(out, m.name, m.type, m.text);
        sample(out, m.name, "", m.value);
    }
    help(out, "flowtop_sweep_interval_seconds", "gauge",
         "How often every flow's counters are re-read from the kernel.");
    sample(out, "flowtop_sweep_interval_seconds", "", s.sweep_interval_s);
    help(out, "flowtop_frame_timestamp_seconds", "gauge", "When the latest frame was made.");
    sample(out, "flowtop_frame_timestamp_seconds", "", static_cast<double>(s.time_ns) / 1e9);
    // The table's pressure, per watched namespace (read by the writer once a tick). Without
    // --all-netns one series each, unlabelled; the counters are the kernel's own, monotonic
    // while a namespace lives.
    if (frame && s.ct_known && !frame->table_use.empty()) {
        auto ns_label = [&](const table::NetnsTableUse& u) {
            if (!config_.netns_label) return std::string();
            return "netns=\"" + (u.label == k_no_string ? "host" : label_value(u.label)) + '"';
        };
        help(out, "flowtop_conntrack_entries", "gauge",
             "Entries in the kernel's conntrack table (nf_conntrack_count).");
        for (const auto& u : frame->table_use)
            sample(out, "flowtop_conntrack_entries", ns_label(u), u.count);
        help(out, "flowtop_conntrack_entries_limit", "gauge",
             "Size limit of the kernel's conntrack table (nf_conntrack_max).");
        for (const auto& u : frame->table_use)
            sample(out, "flowtop_conntrack_entries_limit", ns_label(u), u.max);
        help(out, "flowtop_conntrack_buckets", "gauge",
             "Hash buckets of the kernel's conntrack table (nf_conntrack_buckets).");
        sample(out, "flowtop_conntrack_buckets", "", s.ct_buckets);
        help(out, "flowtop_conntrack_stat_total", "counter",
             "The kernel's per-CPU conntrack statistics summed over CPUs (conntrack -S), by "
             "kind: drop and early_drop mean the table was full.");
        for (const auto& u : frame->table_use) {
            const std::string ns = ns_label(u);
            for (std::size_t i = 0; i < ct::k_kernel_counter_count; ++i)
                sample(out, "flowtop_conntrack_stat_total",
                       std::string("kind=\"") + ct::k_kernel_counter_names[i] + '"' +
                           (ns.empty() ? "" : "," + ns),
                       ct::counter_at(u.counters, i));
        }
    }
    for (const auto& extra : extras_) extra(out);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    help(out, "flowtop_scrape_duration_seconds", "gauge", "Time taken to build this answer.");
    sample(out, "flowtop_scrape_duration_seconds", "", took);
    return out;
}

void PrometheusExporter::serve(std::stop_token stop) {
    while (!stop.stop_requested()) {
        pollfd p{listen_.get(), POLLIN, 0};
        const int rc = os::poll(&p, 1, 250);
        if (rc <= 0) continue;
        UniqueFd client(accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!client) continue;
        try {
            answer(client.get());
        } catch (...) {
            // One failed answer (out of memory) must not end the server.
        }
    }
}

void PrometheusExporter::answer(int fd) const {
    const auto deadline = monotonic_ms() + static_cast<std::uint64_t>(config_.io_timeout.count());
    std::string request;
    char buf[2048];
    // One request head, bounded in size and time; a body is never read.
    while (request.find("\r\n\r\n") == std::string::npos &&
           request.find("\n\n") == std::string::npos) {
        if (request.size() >= config_.max_request) {
            write_all(fd,
                      "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n",
                      deadline);
            return;
        }
        if (!wait_fd(fd, POLLIN, deadline)) return;
        const ssize_t n = os::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return;
        request.append(buf, static_cast<std::size_t>(n));
    }
    const auto line_end = request.find_first_of("\r\n");
    const std::string_view line(request.data(), line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    auto reply = [&](const char* status, const std::string& body, bool with_body) {
        std::string head = std::string("HTTP/1.1 ") + status +
                           "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"
                           "\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
        if (with_body) head += body;
        write_all(fd, head, deadline);
    };
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
        line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
        reply("400 Bad Request", "bad request\n", true);
        return;
    }
    const auto method = line.substr(0, sp1);
    auto path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    if (method != "GET" && method != "HEAD") {
        reply("405 Method Not Allowed", "only GET\n", true);
        return;
    }
    if (path != "/metrics") {
        reply("404 Not Found", "flowtop serves /metrics only\n", method == "GET");
        return;
    }
    reply("200 OK", render(), method == "GET");
    shutdown(fd, SHUT_WR);
}

}  // namespace flowtop::exporters
