#include "flowtop/enrich/proc_attributor.hpp"

#include <ifaddrs.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stop_token>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flowtop/ct/parser.hpp"
#include "flowtop/enrich/proc_info.hpp"
#include "flowtop/enrich/proc_inode_cache.hpp"
#include "flowtop/enrich/proc_sock_diag.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"

namespace flowtop::enrich {
namespace {

using IfaddrsPtr = CPtr<ifaddrs, freeifaddrs>;

enum class Outcome : std::uint8_t { attributed, forwarded, unknown };

struct Request {
    ct::FlowKey id = 0;
    ct::FlowRecord flow;
};

struct Result {
    ct::FlowKey id = 0;
    Outcome outcome = Outcome::unknown;
    bool has_socket = false;  // a socket matched, even if its process is gone
    std::uint32_t uid = 0;
    ProcInfo info;  // info.pid == 0: no process found
};

// Addresses of this network namespace's interfaces; loopback ranges count as local too.
class LocalAddrs {
  public:
    void refresh() {
        addrs_.clear();
        ifaddrs* raw = nullptr;
        if (getifaddrs(&raw) != 0) return;
        IfaddrsPtr list(raw);
        for (ifaddrs* a = raw; a; a = a->ifa_next) {
            if (!a->ifa_addr) continue;
            if (a->ifa_addr->sa_family == AF_INET) {
                const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
                addrs_.insert(key(Family::ipv4, Addr::v4(sin->sin_addr.s_addr)));
            } else if (a->ifa_addr->sa_family == AF_INET6) {
                const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
                addrs_.insert(key(Family::ipv6, Addr::v6(&sin6->sin6_addr)));
            }
        }
    }
    bool contains(Family f, const Addr& a) const {
        if (f == Family::ipv4 && a.bytes[0] == 127) return true;
        return addrs_.contains(key(f, a));
    }

  private:
    static std::string key(Family f, const Addr& a) {
        std::string k(reinterpret_cast<const char*>(a.bytes.data()), 16);
        k.push_back(static_cast<char>(f));
        return k;
    }
    std::unordered_set<std::string> addrs_;
};

// Subscribes to conntrack NEW events only; empty when the kernel refuses (then attribution
// happens on the tick alone).
UniqueFd open_new_flow_listener() {
    UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER));
    if (!fd) return {};
    int size = 4 << 20;
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = NF_NETLINK_CONNTRACK_NEW;
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
    return fd;
}

}  // namespace

struct ProcAttributor::Impl {
    explicit Impl(ProcAttributorConfig c) : config(std::move(c)), cache(config.proc_root) {}

    ProcAttributorConfig config;
    ProcAttributorStats stats;

    // Hand-over between writer and worker. The writer only ever try_locks it.
    std::mutex mutex;
    std::vector<Request> requests;
    std::vector<Result> results;
    UniqueFd wake;

    // Writer side.
    struct Seen {
        std::uint64_t tick = 0;  // last tick the flow was in the table
        std::uint8_t attempts = 0;
        bool in_flight = false;
        bool done = false;
    };
    std::unordered_map<ct::FlowKey, Seen> seen;
    std::unordered_map<ct::FlowKey, std::pair<Result, std::uint64_t>> early;  // row not yet there
    std::vector<Request> outgoing;
    std::vector<Result> incoming;
    std::uint64_t tick = 0;

    // Worker side.
    SockDiag diag;
    InodeCache cache;
    // What a process was, read while it held its sockets: a short-lived client has exited by
    // the time its flow is looked at. Pruned of exited processes after a while.
    struct Known {
        ProcInfo info;
        std::chrono::steady_clock::time_point when;
    };
    std::unordered_map<std::uint32_t, Known> infos;
    LocalAddrs local;
    std::chrono::steady_clock::time_point local_at{};
    UniqueFd new_flows;
    std::vector<std::byte> event_buf = std::vector<std::byte>(256 * 1024);
    std::jthread worker;

    void apply(table::FlowRow& row, const Result& r, StringPool& strings);
    void work(std::stop_token stop);
    void process(std::vector<Request>& batch, std::vector<Result>& out);
    const ProcInfo& info_of(std::uint32_t pid, std::uint64_t& reads, bool reread = false);
    void remember_new_processes(std::uint64_t& reads);
    void read_new_flows(ct::Parser& parser, std::vector<Request>& batch);
};

ProcAttributor::ProcAttributor(ProcAttributorConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {
    impl_->wake.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!impl_->wake) throw Error(errno_message("cannot create an eventfd", errno));
    if (impl_->config.watch_new_flows) impl_->new_flows = open_new_flow_listener();
    // The thread inherits this thread's network namespace (after --netns): sock_diag and the
    // interface addresses are the watched namespace's, while /proc stays the host's mount.
    impl_->worker = std::jthread([impl = impl_.get()](std::stop_token stop) { impl->work(stop); });
}

ProcAttributor::~ProcAttributor() {
    impl_->worker.request_stop();
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = write(impl_->wake.get(), &one, sizeof(one));
    if (impl_->worker.joinable()) impl_->worker.join();
}

const ProcAttributorStats& ProcAttributor::stats() const noexcept { return impl_->stats; }

void ProcAttributor::Impl::apply(table::FlowRow& row, const Result& r, StringPool& strings) {
    if (row.pid || row.forwarded) return;
    if (r.outcome == Outcome::forwarded) {
        row.forwarded = true;
        return;
    }
    if (!r.has_socket) return;
    row.uid = r.uid;
    if (r.info.pid) {
        row.pid = r.info.pid;
        row.comm = strings.intern(r.info.comm);
        row.cmdline = r.info.cmdline.empty() ? k_no_string : strings.intern(r.info.cmdline);
        if (!r.info.container.empty()) row.container = strings.intern(r.info.container);
        if (row.netns == k_no_string && r.info.netns)
            row.netns = strings.intern("net:[" + std::to_string(r.info.netns) + "]");
    }
    // The socket's owner, which is the user even when the process has gone.
    row.user = strings.intern(user_name(r.uid));
}

void ProcAttributor::on_tick(table::FlowTable& table, StringPool& strings, std::uint64_t) {
    auto& s = *impl_;
    ++s.tick;
    // Results first: they may settle flows that would otherwise be requested below.
    s.incoming.clear();
    bool locked = s.mutex.try_lock();
    if (locked) {
        s.incoming.swap(s.results);
        s.mutex.unlock();
    }
    for (auto& r : s.incoming) {
        auto& seen = s.seen[r.id];
        seen.in_flight = false;
        if (table.update(r.id, [&](table::FlowRow& row) { s.apply(row, r, strings); })) {
            seen.done = r.outcome != Outcome::unknown || r.has_socket;
        } else if (s.early.size() < 65536) {
            s.early.emplace(r.id, std::make_pair(std::move(r), s.tick));
        }
    }

    s.outgoing.clear();
    // Reading only: rows change through update(), so a pass over settled rows unshares no
    // chunk of the frames readers hold.
    table.for_each([&](const table::FlowRow& row) {
        // Settled rows cost no lookup: at 100k flows this loop runs every tick.
        if (row.pid || row.forwarded) return;
        if (s.config.source && row.ct.source != *s.config.source) return;
        const auto key = ct::flow_key(row.ct);
        auto& seen = s.seen[key];
        seen.tick = s.tick;
        if (seen.done || seen.in_flight) return;
        if (auto it = s.early.find(key); it != s.early.end()) {
            const Result& early = it->second.first;
            table.update(key, [&](table::FlowRow& r) { s.apply(r, early, strings); });
            seen.done = early.outcome != Outcome::unknown || early.has_socket;
            s.early.erase(it);
            if (seen.done) return;
        }
        if (seen.attempts >= s.config.attempts) return;
        if (s.outgoing.size() >= s.config.queue_capacity) return;
        ++seen.attempts;
        seen.in_flight = true;
        s.outgoing.push_back({key, row.ct});
    });

    // Forget flows that left the table, and results whose flow never arrived.
    if (s.tick % 16 == 0) {
        std::erase_if(s.seen, [&](const auto& kv) { return kv.second.tick + 2 < s.tick; });
        std::erase_if(s.early, [&](const auto& kv) { return kv.second.second + 16 < s.tick; });
    }
    if (s.outgoing.empty()) return;
    if (!s.mutex.try_lock()) {
        // The worker holds the hand-over for a moment: post next tick rather than wait.
        for (auto& r : s.outgoing) {
            auto& seen = s.seen[r.id];
            seen.in_flight = false;
            --seen.attempts;
        }
        s.stats.dropped += s.outgoing.size();
        return;
    }
    std::size_t room = s.config.queue_capacity > s.requests.size()
                           ? s.config.queue_capacity - s.requests.size()
                           : 0;
    std::size_t n = std::min(room, s.outgoing.size());
    s.requests.insert(s.requests.end(), s.outgoing.begin(), s.outgoing.begin() + n);
    s.mutex.unlock();
    for (std::size_t i = n; i < s.outgoing.size(); ++i) {
        auto& seen = s.seen[s.outgoing[i].id];
        seen.in_flight = false;
        --seen.attempts;
    }
    s.stats.dropped += s.outgoing.size() - n;
    s.stats.requests += n;
    std::uint64_t one = 1;
    [[maybe_unused]] auto w = write(s.wake.get(), &one, sizeof(one));
}

void ProcAttributor::Impl::read_new_flows(ct::Parser& parser, std::vector<Request>& batch) {
    for (int reads = 0; reads < 64; ++reads) {
        ssize_t n = recv(new_flows.get(), event_buf.data(), event_buf.size(), 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            break;  // EAGAIN, or ENOBUFS: lost ones are asked for on the tick
        }
        parser.parse(std::span<const std::byte>(event_buf.data(), static_cast<std::size_t>(n)),
                     [&](const ct::FlowRecord& r) {
                         if (r.proto != IPPROTO_TCP && r.proto != IPPROTO_UDP) return;
                         ct::FlowRecord tagged = r;
                         tagged.source = config.source.value_or(0);
                         batch.push_back({ct::flow_key(tagged), tagged});
                     });
    }
}

void ProcAttributor::Impl::work(std::stop_token stop) {
    ct::Parser parser;
    std::vector<Request> batch;
    std::vector<Result> out;
    // Keep the cache warm: when a new flow comes, only processes started since the last look
    // need a walk, and that walk must beat a client that exits right after sending.
    auto warm = [this] {
        std::uint64_t reads = 0;
        auto before = cache.stats().proc_reads;
        remember_new_processes(reads);
        stats.proc_reads += cache.stats().proc_reads - before + reads;
    };
    warm();
    while (!stop.stop_requested()) {
        pollfd fds[2] = {{wake.get(), POLLIN, 0}, {new_flows.get(), POLLIN, 0}};
        int nfds = new_flows ? 2 : 1;
        int ready = poll(fds, static_cast<nfds_t>(nfds), 1000);
        if (ready < 0 && errno != EINTR) break;
        if (stop.stop_requested()) break;
        if (ready == 0) {
            warm();
            continue;
        }
        std::uint64_t count;
        [[maybe_unused]] auto r = read(wake.get(), &count, sizeof(count));
        batch.clear();
        if (new_flows) read_new_flows(parser, batch);
        {
            std::lock_guard lock(mutex);
            batch.insert(batch.end(), requests.begin(), requests.end());
            requests.clear();
        }
        if (batch.empty()) continue;
        out.clear();
        try {
            process(batch, out);
        } catch (const std::exception&) {
            // A failed batch leaves its flows unattributed; the tick asks again.
            for (auto& req : batch) out.push_back({req.id, Outcome::unknown, false, 0, {}});
        }
        std::lock_guard lock(mutex);
        for (auto& res : out) results.push_back(std::move(res));
    }
}

void ProcAttributor::Impl::process(std::vector<Request>& batch, std::vector<Result>& out) {
    // Interface addresses change rarely; a NEW-event batch cannot afford the netlink round trip.
    auto now = std::chrono::steady_clock::now();
    if (now - local_at > std::chrono::seconds(1)) {
        local.refresh();
        local_at = now;
    }
    // The same flow may come from the NEW listener and the tick.
    std::unordered_set<ct::FlowKey> done;
    struct Local {
        std::size_t index;
        bool client;
        bool server;
    };
    std::vector<Local> locals;
    bool want[2][2] = {};  // [udp][ipv6]
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& f = batch[i].flow;
        if (!done.insert(batch[i].id).second) continue;
        bool client_local = local.contains(f.family, f.orig.src);
        bool server_local = local.contains(f.family, f.reply.src);
        if (!client_local && !server_local) {
            // Neither end is this host: routed through. A NAT address of ours (orig.dst of a
            // DNAT, reply.dst of a masquerade) is not an end: no socket ever holds it.
            out.push_back({batch[i].id, Outcome::forwarded, false, 0, {}});
            ++stats.forwarded;
            continue;
        }
        locals.push_back({i, client_local, server_local});
        want[f.proto == IPPROTO_UDP][f.family == Family::ipv6] = true;
    }
    if (locals.empty()) return;

    // Sockets first, then the processes started since the last look: a client that exits right
    // after sending takes its socket along within about a millisecond (measured with python3).
    std::vector<SocketEntry> sockets;
    bool dumped[2][2] = {};
    auto dump = [&](int udp, int v6) {
        if (dumped[udp][v6]) return false;
        dumped[udp][v6] = true;
        diag.dump(udp ? IPPROTO_UDP : IPPROTO_TCP, v6 ? Family::ipv6 : Family::ipv4, sockets);
        ++stats.dumps;
        return true;
    };
    for (int udp = 0; udp < 2; ++udp)
        for (int v6 = 0; v6 < 2; ++v6)
            if (want[udp][v6]) dump(udp, v6);
    auto reads_before = cache.stats().proc_reads;
    std::uint64_t info_reads = 0;
    for (auto pid : cache.scan_new_pids()) {
        infos.erase(pid);  // a reused pid
        info_of(pid, info_reads);
    }
    SocketIndex index;
    index.build(sockets);
    std::vector<std::pair<std::size_t, SocketMatch>> matched;
    std::vector<Local> unmatched;
    for (const auto& l : locals) {
        if (auto m = index.match(batch[l.index].flow, l.client, l.server))
            matched.emplace_back(l.index, *m);
        else
            unmatched.push_back(l);
    }
    // An IPv4 flow may belong to a v6 socket (a dual-stack server sees ::ffff:a.b.c.d). Only
    // then is the v6 table dumped too: at 20k sockets each dump costs ~10 ms.
    bool more = false;
    for (const auto& l : unmatched)
        if (batch[l.index].flow.family == Family::ipv4)
            more |= dump(batch[l.index].flow.proto == IPPROTO_UDP, 1);
    if (more) index.build(sockets);
    for (const auto& l : unmatched) {
        if (auto m = more ? index.match(batch[l.index].flow, l.client, l.server) : std::nullopt) {
            matched.emplace_back(l.index, *m);
        } else {
            out.push_back({batch[l.index].id, Outcome::unknown, false, 0, {}});
            ++stats.unknown;
        }
    }
    stats.proc_reads += cache.stats().proc_reads - reads_before + info_reads;
    if (matched.empty()) return;
    std::vector<std::uint32_t> inodes, pids(matched.size());
    for (auto& [i, m] : matched) inodes.push_back(m.inode);
    reads_before = cache.stats().proc_reads;
    info_reads = 0;
    cache.resolve(inodes, pids);
    std::unordered_set<std::uint32_t> reread;
    for (std::size_t k = 0; k < matched.size(); ++k) {
        Result r{batch[matched[k].first].id, Outcome::attributed, true, matched[k].second.uid, {}};
        // Read again once a batch while it lives: a pid first seen as `ip netns exec` or a
        // shell has exec'd its program since. The cached copy serves one that has exited.
        if (std::uint32_t pid = pids[k])
            r.info = info_of(pid, info_reads, reread.insert(pid).second);
        if (r.info.pid)
            ++stats.attributed;
        else
            ++stats.unknown;
        out.push_back(std::move(r));
    }
    stats.proc_reads += cache.stats().proc_reads - reads_before + info_reads;
}

const ProcInfo& ProcAttributor::Impl::info_of(std::uint32_t pid, std::uint64_t& reads,
                                              bool reread) {
    auto now = std::chrono::steady_clock::now();
    auto [it, fresh] = infos.try_emplace(pid);
    if (fresh || reread || (cache.alive(pid) && now - it->second.when > std::chrono::seconds(10))) {
        ProcInfo info;
        reads += 6;
        if (read_proc_info(cache.proc_root(), pid, info))
            it->second = Known{std::move(info), now};
        else if (fresh)
            it->second = Known{ProcInfo{}, now};
    }
    return it->second.info;
}

void ProcAttributor::Impl::remember_new_processes(std::uint64_t& reads) {
    for (auto pid : cache.scan_new_pids()) {
        infos.erase(pid);  // a reused pid
        info_of(pid, reads);
    }
    if (infos.size() > 4096) {
        auto now = std::chrono::steady_clock::now();
        std::erase_if(infos, [&](const auto& kv) {
            return !cache.alive(kv.first) && now - kv.second.when > std::chrono::seconds(120);
        });
    }
}

}  // namespace flowtop::enrich
