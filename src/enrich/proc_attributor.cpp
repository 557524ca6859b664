#include "flowtop/enrich/proc_attributor.hpp"

#include <fcntl.h>
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
#include <utility>
#include <vector>

#include "flowtop/ct/parser.hpp"
#include "flowtop/enrich/proc_info.hpp"
#include "flowtop/enrich/proc_inode_cache.hpp"
#include "flowtop/enrich/proc_sock_diag.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"
#include "flowtop/util/local_addresses.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/procfs.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop::enrich {
namespace {

// The hand-over lists hold up to queue_capacity requests or results (~150 bytes each) while a
// first dump's flows are worked through; afterwards a few a tick. Their memory goes back once
// a list is mostly empty, as FlowTable's lists do (about 20 MB at 240k flows otherwise).
template <typename T>
void release_or_clear(std::vector<T>& v) {
    if (v.capacity() > 1024 && v.size() < v.capacity() / 4)
        std::vector<T>().swap(v);
    else
        v.clear();
}

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
    ProcInfo info;           // info.pid == 0: no process found
    bool local_end = false;  // an end is this namespace's (so not forwarded), socket or not
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

// One watched namespace, as the worker sees it: sockets opened inside it, and its addresses.
struct Space {
    std::uint16_t source = 0;
    SockDiag diag;
    UniqueFd new_flows;
    UniqueFd netns;  // to read its interface addresses again from the worker's thread
    std::uint64_t netns_inode = 0;
    LocalAddresses local;
    std::chrono::steady_clock::time_point local_at{};
};

// A namespace coming or going, in the order the writer told them (a source index is reused).
struct SpaceChange {
    std::uint16_t source = 0;
    std::unique_ptr<Space> space;  // nullptr: removed
};

}  // namespace

struct ProcAttributor::Impl {
    explicit Impl(ProcAttributorConfig c) : config(std::move(c)), cache(config.proc_root) {}

    ProcAttributorConfig config;
    ProcAttributorStats stats;

    // Hand-over between writer and worker. The writer only ever try_locks it.
    std::mutex mutex;
    std::vector<Request> requests;
    std::vector<Result> results;
    std::vector<SpaceChange> changes;
    UniqueFd wake;

    // Writer side.
    struct Seen {
        std::uint64_t tick = 0;  // last tick the flow was in the table
        std::uint8_t attempts = 0;
        bool in_flight = false;
    };
    std::unordered_map<ct::FlowKey, Seen> seen;
    std::unordered_map<ct::FlowKey, std::pair<Result, std::uint64_t>> early;  // row not yet there
    std::vector<ct::FlowKey> retry;  // not settled yet, or no room: asked again next tick
    std::vector<ct::FlowKey> candidates;
    std::vector<Request> outgoing;
    std::vector<Result> incoming;
    std::vector<bool> served;  // by source: added and not removed
    std::uint64_t tick = 0;

    // Worker side.
    std::vector<std::unique_ptr<Space>> spaces;  // by source
    std::uint64_t own_netns = 0;                 // the worker thread's network namespace
    InodeCache cache;
    // What a process was, read while it held its sockets: a short-lived client has exited by
    // the time its flow is looked at. Pruned of exited processes after a while.
    struct Known {
        ProcInfo info;
        std::chrono::steady_clock::time_point when;
    };
    std::unordered_map<std::uint32_t, Known> infos;
    std::vector<std::byte> event_buf = std::vector<std::byte>(std::size_t{256} * 1024);
    std::jthread worker;

    void apply(table::FlowEnrichment& row, const Result& r, StringPool& strings);
    void work(std::stop_token stop);
    void process(std::vector<Request>& batch, std::vector<Result>& out);
    const ProcInfo& info_of(std::uint32_t pid, std::uint64_t& reads, bool reread = false);
    void remember_new_processes(std::uint64_t& reads);
    void read_new_flows(Space& space, ct::Parser& parser, std::vector<Request>& batch);
    void apply_changes(std::vector<SpaceChange>& list);
    Space* space_of(std::uint16_t source) noexcept {
        return source < spaces.size() ? spaces[source].get() : nullptr;
    }
    void refresh_local(Space& space);
    void wake_worker() noexcept {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = write(wake.get(), &one, sizeof(one));
    }
};

ProcAttributor::ProcAttributor(ProcAttributorConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {
    impl_->wake.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!impl_->wake) throw Error(errno_message("cannot create an eventfd", errno));
    // Whichever namespace the worker runs in, it uses the sockets each namespace's
    // add_namespace opened; /proc is the host's mount throughout.
    impl_->worker = signals::crash_safe_thread(
        [impl = impl_.get()](std::stop_token stop) { impl->work(stop); });
}

ProcAttributor::~ProcAttributor() {
    impl_->worker.request_stop();
    impl_->wake_worker();
    if (impl_->worker.joinable()) impl_->worker.join();
}

void ProcAttributor::add_namespace(std::uint16_t source) {
    std::unique_ptr<Space> space;
    try {
        space = std::make_unique<Space>();  // opens its sock_diag socket, here
    } catch (const Error& e) {
        throw Error(std::string("no process attribution: ") + e.what());
    }
    space->source = source;
    if (impl_->config.watch_new_flows) space->new_flows = open_new_flow_listener();
    space->netns.reset(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    space->netns_inode = netns_link_inode("/proc/thread-self/ns/net");
    space->local = LocalAddresses::of_current_namespace();
    space->local_at = std::chrono::steady_clock::now();
    auto& served = impl_->served;
    if (served.size() <= source) served.resize(source + 1u, false);
    served[source] = true;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->changes.push_back({source, std::move(space)});
    }
    impl_->wake_worker();
}

void ProcAttributor::remove_namespace(std::uint16_t source) noexcept {
    auto& served = impl_->served;
    if (source < served.size()) served[source] = false;
    try {
        std::lock_guard lock(impl_->mutex);
        impl_->changes.push_back({source, nullptr});
    } catch (...) {
        // Out of memory: the worker keeps the namespace's sockets until it ends.
    }
    impl_->wake_worker();
}

const ProcAttributorStats& ProcAttributor::stats() const noexcept { return impl_->stats; }

void ProcAttributor::Impl::apply(table::FlowEnrichment& row, const Result& r, StringPool& strings) {
    if (row.pid || row.forwarded) return;
    if (r.outcome == Outcome::forwarded) {
        row.forwarded = true;
        row.forwarded_known = true;
        return;
    }
    if (r.local_end || r.has_socket) row.forwarded_known = true;
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

void ProcAttributor::on_tick(table::TickContext& tick) {
    auto& s = *impl_;
    ++s.tick;
    StringPool& strings = tick.strings();
    auto settled = [](const Result& r) { return r.outcome != Outcome::unknown || r.has_socket; };
    // Results first: they may settle flows that would otherwise be requested below.
    release_or_clear(s.incoming);
    if (s.mutex.try_lock()) {
        s.incoming.swap(s.results);
        s.mutex.unlock();
    }
    release_or_clear(s.candidates);
    s.candidates.swap(s.retry);
    for (auto& r : s.incoming) {
        auto seen = s.seen.find(r.id);
        if (seen != s.seen.end()) seen->second.in_flight = false;
        if (tick.enrich(r.id, [&](table::FlowEnrichment& row) { s.apply(row, r, strings); })) {
            if (settled(r)) {
                if (seen != s.seen.end()) s.seen.erase(seen);
            } else {
                s.retry.push_back(r.id);  // a local end without a socket yet: next tick again
            }
        } else if (s.early.size() < 65536) {
            // From the worker's own NEW listener, before the writer has the row.
            const auto id = r.id;  // read before r is moved into the pair
            s.early.emplace(id, std::make_pair(std::move(r), s.tick));
        }
    }

    // The flows born this tick and those waiting for another attempt; nothing else is looked
    // at, so a table of settled flows costs nothing here.
    const auto& created = tick.changes().created;
    s.candidates.insert(s.candidates.end(), created.begin(), created.end());
    release_or_clear(s.outgoing);
    for (const auto key : s.candidates) {
        const table::FlowRow* row = tick.find(key);
        if (!row || row->pid || row->forwarded || row->gone) continue;
        const auto source = row->ct.source;
        if (source >= s.served.size() || !s.served[source]) continue;
        // A flow gets an entry only once it is asked for: a first dump's 240k flows wait in
        // `retry` (8 bytes each), not here (about 50 each, in a map that keeps its buckets).
        auto known = s.seen.find(key);
        if (known != s.seen.end()) {
            known->second.tick = s.tick;
            if (known->second.in_flight) continue;
        }
        if (auto it = s.early.find(key); it != s.early.end()) {
            const Result early = std::move(it->second.first);
            s.early.erase(it);
            tick.enrich(key, [&](table::FlowEnrichment& r) { s.apply(r, early, strings); });
            if (settled(early)) {
                if (known != s.seen.end()) s.seen.erase(known);
                continue;
            }
            row = tick.find(key);
            if (!row) continue;
        }
        if (known != s.seen.end() && known->second.attempts >= s.config.attempts) continue;
        if (s.outgoing.size() >= s.config.queue_capacity) {
            s.retry.push_back(key);
            continue;
        }
        auto& seen = known != s.seen.end() ? known->second : s.seen[key];
        seen.tick = s.tick;
        ++seen.attempts;
        seen.in_flight = true;
        s.outgoing.push_back({key, row->ct});
    }

    // Forget flows that left the table, and results whose flow never arrived.
    if (s.tick % 16 == 0) {
        std::erase_if(s.seen, [&](const auto& kv) { return kv.second.tick + 32 < s.tick; });
        std::erase_if(s.early, [&](const auto& kv) { return kv.second.second + 16 < s.tick; });
    }
    if (s.outgoing.empty()) return;
    auto give_back = [&](std::size_t from) {
        for (std::size_t i = from; i < s.outgoing.size(); ++i) {
            auto& seen = s.seen[s.outgoing[i].id];
            seen.in_flight = false;
            --seen.attempts;
            s.retry.push_back(s.outgoing[i].id);
        }
        s.stats.dropped += s.outgoing.size() - from;
    };
    if (!s.mutex.try_lock()) {
        // The worker holds the hand-over for a moment: post next tick rather than wait.
        give_back(0);
        return;
    }
    std::size_t room = s.config.queue_capacity > s.requests.size()
                           ? s.config.queue_capacity - s.requests.size()
                           : 0;
    std::size_t n = std::min(room, s.outgoing.size());
    s.requests.insert(s.requests.end(), s.outgoing.begin(), s.outgoing.begin() + n);
    s.mutex.unlock();
    give_back(n);
    s.stats.requests += n;
    s.wake_worker();
}

void ProcAttributor::Impl::read_new_flows(Space& space, ct::Parser& parser,
                                          std::vector<Request>& batch) {
    for (int reads = 0; reads < 64; ++reads) {
        ssize_t n = os::recv(space.new_flows.get(), event_buf.data(), event_buf.size(), 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            break;  // EAGAIN, or ENOBUFS: lost ones are asked for on the tick
        }
        parser.parse(std::span<const std::byte>(event_buf.data(), static_cast<std::size_t>(n)),
                     [&](const ct::FlowRecord& r) {
                         if (r.proto != IPPROTO_TCP && r.proto != IPPROTO_UDP) return;
                         ct::FlowRecord tagged = r;
                         tagged.source = space.source;
                         batch.push_back({ct::flow_key(tagged), tagged});
                     });
    }
}

void ProcAttributor::Impl::work(std::stop_token stop) {
    own_netns = netns_link_inode("/proc/thread-self/ns/net");
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
    std::vector<SpaceChange> taken;
    std::vector<pollfd> fds;
    std::vector<Space*> listening;  // the space of fds[i + 1]
    while (!stop.stop_requested()) {
        fds.assign(1, {wake.get(), POLLIN, 0});
        listening.clear();
        for (const auto& space : spaces)
            if (space && space->new_flows) {
                fds.push_back({space->new_flows.get(), POLLIN, 0});
                listening.push_back(space.get());
            }
        int ready = os::poll(fds.data(), static_cast<nfds_t>(fds.size()), 1000);
        if (ready < 0 && errno != EINTR) break;
        if (stop.stop_requested()) break;
        if (ready == 0) {
            warm();
            continue;
        }
        std::uint64_t count;
        if (fds[0].revents & POLLIN) {
            [[maybe_unused]] auto r = read(wake.get(), &count, sizeof(count));
        }
        release_or_clear(batch);
        for (std::size_t i = 0; i < listening.size(); ++i)
            if (fds[i + 1].revents & POLLIN) read_new_flows(*listening[i], parser, batch);
        {
            std::lock_guard lock(mutex);
            taken.swap(changes);
            batch.insert(batch.end(), requests.begin(), requests.end());
            release_or_clear(requests);
        }
        // Before the requests: those the writer posted after adding a namespace need it.
        apply_changes(taken);
        if (batch.empty()) continue;
        release_or_clear(out);
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

void ProcAttributor::Impl::apply_changes(std::vector<SpaceChange>& list) {
    for (auto& change : list) {
        if (spaces.size() <= change.source) spaces.resize(change.source + 1u);
        spaces[change.source] = std::move(change.space);
    }
    list.clear();
}

void ProcAttributor::Impl::refresh_local(Space& space) {
    // Interface addresses change rarely; a NEW-event batch cannot afford the netlink round
    // trip every time. getifaddrs asks the calling thread's namespace, so the worker steps
    // into the flow's namespace for it (only this thread moves, for the length of the call).
    auto now = std::chrono::steady_clock::now();
    if (now - space.local_at <= std::chrono::seconds(1)) return;
    space.local_at = now;
    try {
        if (!space.netns || space.netns_inode == own_netns) {
            space.local = LocalAddresses::of_current_namespace();
        } else {
            ScopedNetns inside(space.netns.get());
            space.local = LocalAddresses::of_current_namespace();
        }
    } catch (const Error&) {
        // Cannot enter it: the addresses read when it was added stay.
    }
}

void ProcAttributor::Impl::process(std::vector<Request>& batch, std::vector<Result>& out) {
    // The same flow may come from the NEW listener and the tick.
    std::unordered_set<ct::FlowKey> done;
    struct Local {
        std::size_t index;
        bool client;
        bool server;
    };
    // The requests of one namespace, matched against its own sockets.
    struct Group {
        Space* space = nullptr;
        std::vector<Local> locals;
        bool want[2][2] = {};    // [udp][ipv6]
        bool dumped[2][2] = {};  // [udp][ipv6]
        std::vector<SocketEntry> sockets;
    };
    std::vector<Group> groups;
    std::unordered_map<std::uint16_t, std::size_t> group_of;  // source -> groups index
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& f = batch[i].flow;
        if (!done.insert(batch[i].id).second) continue;
        Space* space = space_of(f.source);
        if (!space) {
            // Its namespace went (or never came): nothing can hold its sockets any more.
            out.push_back({batch[i].id, Outcome::unknown, false, 0, {}});
            ++stats.unknown;
            continue;
        }
        auto [at, fresh] = group_of.try_emplace(f.source, groups.size());
        if (fresh) {
            refresh_local(*space);
            groups.emplace_back().space = space;
        }
        Group& g = groups[at->second];
        const FlowEnds ends = space->local.ends(f.family, f.orig.src, f.reply.src);
        if (ends.forwarded()) {
            // Neither end is this namespace: routed through (see FlowEnds for NAT addresses).
            out.push_back({batch[i].id, Outcome::forwarded, false, 0, {}});
            ++stats.forwarded;
            continue;
        }
        g.locals.push_back({i, ends.client, ends.server});
        g.want[f.proto == IPPROTO_UDP][f.family == Family::ipv6] = true;
    }

    // Sockets first, then the processes started since the last look: a client that exits right
    // after sending takes its socket along within about a millisecond (measured with python3).
    auto dump = [&](Group& g, int udp, int v6) {
        if (g.dumped[udp][v6]) return false;
        g.dumped[udp][v6] = true;
        g.space->diag.dump(udp ? IPPROTO_UDP : IPPROTO_TCP, v6 ? Family::ipv6 : Family::ipv4,
                           g.sockets);
        ++stats.dumps;
        return true;
    };
    bool any_local = false;
    for (auto& g : groups) {
        any_local |= !g.locals.empty();
        for (int udp = 0; udp < 2; ++udp)
            for (int v6 = 0; v6 < 2; ++v6)
                if (g.want[udp][v6]) dump(g, udp, v6);
    }
    if (!any_local) return;
    // One walk of the host's /proc for every namespace of the batch.
    auto reads_before = cache.stats().proc_reads;
    std::uint64_t info_reads = 0;
    for (auto pid : cache.scan_new_pids()) {
        infos.erase(pid);  // a reused pid
        info_of(pid, info_reads);
    }
    std::vector<std::pair<std::size_t, SocketMatch>> matched;
    SocketIndex index;
    std::vector<Local> unmatched;
    for (auto& g : groups) {
        if (g.locals.empty()) continue;
        index.build(g.sockets);
        unmatched.clear();
        for (const auto& l : g.locals) {
            if (auto m = index.match(batch[l.index].flow, l.client, l.server))
                matched.emplace_back(l.index, *m);
            else
                unmatched.push_back(l);
        }
        // An IPv4 flow may belong to a v6 socket (a dual-stack server sees ::ffff:a.b.c.d).
        // Only then is the v6 table dumped too: at 20k sockets each dump costs ~10 ms.
        bool more = false;
        for (const auto& l : unmatched)
            if (batch[l.index].flow.family == Family::ipv4)
                more |= dump(g, batch[l.index].flow.proto == IPPROTO_UDP, 1);
        if (more) index.build(g.sockets);
        for (const auto& l : unmatched) {
            if (auto m =
                    more ? index.match(batch[l.index].flow, l.client, l.server) : std::nullopt) {
                matched.emplace_back(l.index, *m);
            } else {
                out.push_back({batch[l.index].id, Outcome::unknown, false, 0, {}, true});
                ++stats.unknown;
            }
        }
    }
    stats.proc_reads += cache.stats().proc_reads - reads_before + info_reads;
    if (matched.empty()) return;
    // Socket inodes are unique across namespaces (one sockfs): one lookup for them all.
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
