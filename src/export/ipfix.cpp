#include "flowtop/export/ipfix.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "flowtop/util/error.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/signals.hpp"

namespace flowtop::exporters {
namespace {

struct FieldSpec {
    std::uint16_t id;
    std::uint16_t length;
    bool reverse;
};

// The counters and times every template shares, after addresses, ports and protocol.
constexpr FieldSpec k_common[] = {
    {7, 2, false}, {11, 2, false}, {4, 1, false},   {1, 8, false},   {2, 8, false},
    {1, 8, true},  {2, 8, true},   {152, 8, false}, {153, 8, false}, {136, 1, false},
};
constexpr FieldSpec k_v4_addrs[] = {{8, 4, false}, {12, 4, false}};
constexpr FieldSpec k_v6_addrs[] = {{27, 16, false}, {28, 16, false}};
constexpr FieldSpec k_v4_nat[] = {
    {225, 4, false}, {226, 4, false}, {227, 2, false}, {228, 2, false}};
constexpr FieldSpec k_v6_nat[] = {
    {281, 16, false}, {282, 16, false}, {227, 2, false}, {228, 2, false}};

std::vector<FieldSpec> fields_of(std::uint16_t template_id) {
    const bool v6 = template_id == k_template_v6 || template_id == k_template_v6_nat;
    const bool nat = template_id == k_template_v4_nat || template_id == k_template_v6_nat;
    std::vector<FieldSpec> f;
    if (v6)
        f.assign(std::begin(k_v6_addrs), std::end(k_v6_addrs));
    else
        f.assign(std::begin(k_v4_addrs), std::end(k_v4_addrs));
    f.insert(f.end(), std::begin(k_common), std::end(k_common));
    if (nat) {
        if (v6)
            f.insert(f.end(), std::begin(k_v6_nat), std::end(k_v6_nat));
        else
            f.insert(f.end(), std::begin(k_v4_nat), std::end(k_v4_nat));
    }
    return f;
}

std::size_t record_size(std::uint16_t template_id) {
    std::size_t n = 0;
    for (const auto& f : fields_of(template_id)) n += f.length;
    return n;
}

std::uint16_t template_of(const IpfixFlow& f) {
    if (f.family == Family::ipv6) return f.nat ? k_template_v6_nat : k_template_v6;
    return f.nat ? k_template_v4_nat : k_template_v4;
}

class Writer {
  public:
    explicit Writer(std::vector<std::byte>& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(static_cast<std::byte>(v)); }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v >> 16));
        u16(static_cast<std::uint16_t>(v));
    }
    void u64(std::uint64_t v) {
        u32(static_cast<std::uint32_t>(v >> 32));
        u32(static_cast<std::uint32_t>(v));
    }
    void addr(const Addr& a, std::size_t len) {
        for (std::size_t i = 0; i < len; ++i) u8(a.bytes[i]);
    }
    void put16(std::size_t at, std::uint16_t v) {
        out_[at] = static_cast<std::byte>(v >> 8);
        out_[at + 1] = static_cast<std::byte>(v);
    }
    std::size_t size() const { return out_.size(); }

  private:
    std::vector<std::byte>& out_;
};

constexpr std::size_t k_header = 16;
constexpr std::size_t k_set_header = 4;

void message_header(Writer& w, std::uint32_t export_time, std::uint32_t seq, std::uint32_t domain) {
    w.u16(10);  // IPFIX version
    w.u16(0);   // length, set at the end
    w.u32(export_time);
    w.u32(seq);
    w.u32(domain);
}

void record(Writer& w, const IpfixFlow& f) {
    const std::size_t alen = f.family == Family::ipv6 ? 16 : 4;
    w.addr(f.orig.src, alen);
    w.addr(f.orig.dst, alen);
    w.u16(f.orig.sport);
    w.u16(f.orig.dport);
    w.u8(f.proto);
    w.u64(f.orig_delta.bytes);
    w.u64(f.orig_delta.packets);
    w.u64(f.reply_delta.bytes);
    w.u64(f.reply_delta.packets);
    w.u64(f.start_ms);
    w.u64(f.end_ms);
    w.u8(static_cast<std::uint8_t>(f.end_reason));
    if (!f.nat) return;
    // After NAT the original direction leaves from where the reply is addressed to, towards
    // where the reply comes from.
    w.addr(f.reply.dst, alen);
    w.addr(f.reply.src, alen);
    w.u16(f.reply.dport);
    w.u16(f.reply.sport);
}

}  // namespace

std::vector<std::byte> IpfixEncoder::templates(std::uint32_t domain, std::uint32_t export_time_s) {
    std::vector<std::byte> out;
    Writer w(out);
    message_header(w, export_time_s, sequence(domain), domain);
    const std::size_t set_at = w.size();
    w.u16(2);  // template set
    w.u16(0);
    for (std::uint16_t id : {k_template_v4, k_template_v6, k_template_v4_nat, k_template_v6_nat}) {
        const auto fields = fields_of(id);
        w.u16(id);
        w.u16(static_cast<std::uint16_t>(fields.size()));
        for (const auto& f : fields) {
            w.u16(f.reverse ? static_cast<std::uint16_t>(f.id | 0x8000) : f.id);
            w.u16(f.length);
            if (f.reverse) w.u32(k_reverse_pen);
        }
    }
    w.put16(set_at + 2, static_cast<std::uint16_t>(w.size() - set_at));
    w.put16(2, static_cast<std::uint16_t>(w.size()));
    return out;
}

void IpfixEncoder::data(std::uint32_t domain, std::span<const IpfixFlow> flows,
                        std::uint32_t export_time_s, std::vector<std::vector<std::byte>>& out) {
    std::uint32_t& seq = sequence_[domain];
    std::size_t i = 0;
    while (i < flows.size()) {
        auto& msg = out.emplace_back();
        Writer w(msg);
        message_header(w, export_time_s, seq, domain);
        std::uint32_t records = 0;
        // Sets of one template each, as many as fit in the message.
        while (i < flows.size()) {
            const std::uint16_t tid = template_of(flows[i]);
            const std::size_t rsize = record_size(tid);
            if (w.size() + k_set_header + rsize > max_message_ && records > 0) break;
            const std::size_t set_at = w.size();
            w.u16(tid);
            w.u16(0);
            while (i < flows.size() && template_of(flows[i]) == tid &&
                   (w.size() + rsize <= max_message_ || records == 0)) {
                record(w, flows[i]);
                ++records;
                ++i;
            }
            w.put16(set_at + 2, static_cast<std::uint16_t>(w.size() - set_at));
        }
        w.put16(2, static_cast<std::uint16_t>(w.size()));
        seq += records;
    }
}

std::uint32_t IpfixEncoder::sequence(std::uint32_t domain) const {
    auto it = sequence_.find(domain);
    return it == sequence_.end() ? 0 : it->second;
}

bool has_nat(const ct::FlowRecord& ct) noexcept {
    return !(ct.reply.src == ct.orig.dst && ct.reply.dst == ct.orig.src &&
             ct.reply.sport == ct.orig.dport && ct.reply.dport == ct.orig.sport);
}

IpfixFlow ipfix_flow(const table::FlowRow& row, const ct::Counters& orig_since,
                     const ct::Counters& reply_since, std::uint64_t now_ns, bool interim) {
    const auto& ct = row.ct;
    IpfixFlow f;
    f.domain = ct.source + 1u;
    f.family = ct.family;
    f.proto = ct.proto;
    f.orig = ct.orig;
    f.reply = ct.reply;
    if (ct.proto == 1 || ct.proto == 58) {
        // ICMP has no ports; collectors read type and code from the destination port.
        f.orig.sport = 0;
        f.orig.dport = static_cast<std::uint16_t>(ct.icmp_type << 8 | ct.icmp_code);
    }
    f.nat = has_nat(ct);
    if (row.has_counters()) {
        auto delta = [](const ct::Counters& now, const ct::Counters& since) {
            return ct::Counters{now.packets >= since.packets ? now.packets - since.packets : 0,
                                now.bytes >= since.bytes ? now.bytes - since.bytes : 0};
        };
        f.orig_delta = delta(ct.orig_counters, orig_since);
        f.reply_delta = delta(ct.reply_counters, reply_since);
    }
    f.start_ms = row.start_ns() / 1'000'000;
    std::uint64_t end_ns = now_ns;
    if (!interim) end_ns = ct.stop_ns ? ct.stop_ns : (row.closed_ns ? row.closed_ns : now_ns);
    f.end_ms = end_ns / 1'000'000;
    if (interim)
        f.end_reason = EndReason::active_timeout;
    else if (ct.proto == 6 && ct::tcp_state_ended(ct.tcp_state))
        f.end_reason = EndReason::end_of_flow;
    else
        f.end_reason = EndReason::idle_timeout;
    return f;
}

SocketTarget parse_target(const std::string& text, const char* option, const char* default_host,
                          bool resolve) {
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw UsageError(std::string(option) + " '" + text + "': use [ADDRESS]:PORT");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else if (const auto colon = text.rfind(':'); colon != std::string::npos) {
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string::npos)
            throw UsageError(std::string(option) + " '" + text +
                             "': put an IPv6 address in brackets, e.g. [::1]:9100");
    } else {
        port = text;
    }
    if (host.empty()) {
        if (!default_host) throw UsageError(std::string(option) + " '" + text + "': needs a host");
        host = default_host;
    }
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    // A listening address may take port 0 (any free one: tests); a target may not.
    const long lowest = default_host ? 0 : 1;
    if (port.empty() || *end || p < lowest || p > 65535)
        throw UsageError(std::string(option) + " '" + text + "': the port must be 1 to 65535");
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = resolve ? 0 : AI_NUMERICHOST;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        if (!resolve)
            throw UsageError(std::string(option) + " '" + text + "': '" + host +
                             "' is not an IP address");
        throw Error(std::string(option) + " '" + text + "': cannot resolve '" + host +
                    "': " + gai_strerror(rc));
    }
    CPtr<addrinfo, freeaddrinfo> owner(found);
    SocketTarget t;
    t.family = found->ai_family;
    const auto* bytes = reinterpret_cast<const std::byte*>(found->ai_addr);
    t.addr.assign(bytes, bytes + found->ai_addrlen);
    t.text = text;
    return t;
}

IpfixExporter::IpfixExporter(IpfixConfig config)
    : config_(std::move(config)), queue_(config_.queue_capacity) {
    const auto target = parse_target(config_.target, "--ipfix", nullptr, true);
    socket_.reset(::socket(target.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket_) throw Error(errno_message("--ipfix: cannot make a UDP socket", errno));
    int buf = 1 << 20;  // bursts of ends must not overflow the socket before the kernel sends
    setsockopt(socket_.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (connect(socket_.get(), reinterpret_cast<const sockaddr*>(target.addr.data()),
                static_cast<socklen_t>(target.addr.size())) != 0)
        throw Error(errno_message("--ipfix: cannot send to " + config_.target, errno));
}

IpfixExporter::~IpfixExporter() {
    if (thread_.joinable()) {
        thread_.request_stop();
        thread_.join();
    }
}

void IpfixExporter::start() {
    thread_ = signals::crash_safe_thread([this](std::stop_token stop) { run(stop); });
}

std::chrono::milliseconds IpfixExporter::full_pass_period() const noexcept {
    // Every row comes up twice per timeout, so an interim record is at most half a timeout late.
    return std::chrono::duration_cast<std::chrono::milliseconds>(config_.active_timeout) / 2;
}

void IpfixExporter::on_tick(table::TickContext& tick) {
    const auto now = tick.now_ns();
    final_rows_.clear();
    ended_.collect(tick, final_rows_);
    out_.clear();
    for (const auto& row : final_rows_) {
        ct::Counters orig{}, reply{};
        if (auto it = exported_.find(ct::flow_key(row.ct)); it != exported_.end()) {
            orig = it->second.orig;
            reply = it->second.reply;
            exported_.erase(it);
        }
        out_.push_back(ipfix_flow(row, orig, reply, now, false));
    }
    const auto timeout_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(config_.active_timeout).count());
    for (const auto key : tick.pass_keys()) {
        const table::FlowRow* row = tick.find(key);
        if (!row || row->closed) continue;
        auto it = exported_.find(key);
        const std::uint64_t since_ns = it != exported_.end() ? it->second.at_ns : row->start_ns();
        if (now < since_ns + timeout_ns) continue;
        Exported& e = it != exported_.end() ? it->second : exported_[key];
        out_.push_back(ipfix_flow(*row, e.orig, e.reply, now, true));
        if (row->has_counters()) {
            e.orig = row->ct.orig_counters;
            e.reply = row->ct.reply_counters;
        }
        e.at_ns = now;
    }
    if (!out_.empty()) {
        const auto dropped = queue_.push(out_.begin(), out_.end());
        if (dropped) counters_.lost.fetch_add(dropped, std::memory_order_relaxed);
    }
}

void IpfixExporter::run(std::stop_token stop) {
    std::vector<IpfixFlow> batch;
    // Templates at start, so a collector knows them before the first flow ends.
    send_batch(batch);
    while (!stop.stop_requested()) {
        queue_.pop_all(batch, std::chrono::milliseconds(1000), stop);
        send_batch(batch);
    }
    queue_.pop_all(batch, std::chrono::milliseconds(0), stop);
    send_batch(batch);
}

void IpfixExporter::pace() {
    // A tick's ends leave as one burst; a collector's default receive buffer (212 kB, ~150
    // messages) overflows under it: nfcapd got 229k of 800k records at 40k ends/s unpaced.
    // Spread the messages at most k_messages_per_s, in bursts of k_burst.
    constexpr double k_messages_per_s = 8000;
    constexpr double k_burst = 32;
    const auto now = std::chrono::steady_clock::now();
    tokens_ = std::min(
        k_burst, tokens_ + std::chrono::duration<double>(now - refill_).count() * k_messages_per_s);
    refill_ = now;
    if (tokens_ < 1) {
        std::this_thread::sleep_for(
            std::chrono::duration<double>((1 - tokens_) / k_messages_per_s));
        tokens_ = 1;
        refill_ = std::chrono::steady_clock::now();
    }
    tokens_ -= 1;
}

void IpfixExporter::send_batch(std::vector<IpfixFlow>& batch) {
    const auto now = std::chrono::steady_clock::now();
    const auto export_time = static_cast<std::uint32_t>(time(nullptr));
    auto send = [&](const std::vector<std::byte>& msg, std::uint32_t records) {
        if (os::send(socket_.get(), msg.data(), msg.size(), 0) < 0) {
            counters_.send_errors.fetch_add(1, std::memory_order_relaxed);
            counters_.lost.fetch_add(records, std::memory_order_relaxed);
            return false;
        }
        counters_.messages.fetch_add(1, std::memory_order_relaxed);
        counters_.records.fetch_add(records, std::memory_order_relaxed);
        return true;
    };
    auto ensure_templates = [&](std::uint32_t domain) {
        auto it = templates_sent_.find(domain);
        if (it != templates_sent_.end() && now - it->second < config_.template_interval) return;
        // A failed template send is retried with the next batch.
        if (send(encoder_.templates(domain, export_time), 0))
            templates_sent_[domain] = now;
        else
            templates_sent_.erase(domain);
    };
    if (batch.empty()) {
        if (templates_sent_.empty()) ensure_templates(1);
        for (auto& [domain, at] : std::vector(templates_sent_.begin(), templates_sent_.end()))
            ensure_templates(domain);
        return;
    }
    // One domain at a time, and within it one template after the other: fuller sets.
    std::stable_sort(batch.begin(), batch.end(), [](const IpfixFlow& a, const IpfixFlow& b) {
        return a.domain != b.domain ? a.domain < b.domain : template_of(a) < template_of(b);
    });
    std::vector<std::vector<std::byte>> messages;
    std::size_t i = 0;
    while (i < batch.size()) {
        const std::uint32_t domain = batch[i].domain;
        std::size_t j = i;
        while (j < batch.size() && batch[j].domain == domain) ++j;
        ensure_templates(domain);
        messages.clear();
        const std::span<const IpfixFlow> flows(batch.data() + i, j - i);
        encoder_.data(domain, flows, export_time, messages);
        for (const auto& msg : messages) {
            // The record count is in the next message's sequence number; read it back here.
            std::uint32_t records = 0;
            std::size_t at = k_header;
            while (at + k_set_header <= msg.size()) {
                const auto tid =
                    static_cast<std::uint16_t>(std::to_integer<unsigned>(msg[at]) << 8 |
                                               std::to_integer<unsigned>(msg[at + 1]));
                const auto len =
                    static_cast<std::size_t>(std::to_integer<unsigned>(msg[at + 2]) << 8 |
                                             std::to_integer<unsigned>(msg[at + 3]));
                records += static_cast<std::uint32_t>((len - k_set_header) / record_size(tid));
                at += len;
            }
            pace();
            send(msg, records);
        }
        i = j;
    }
}

}  // namespace flowtop::exporters
