#include "flowtop/enrich/dns.hpp"

#include <ares.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <deque>
#include <memory>

#include "flowtop/util/error.hpp"
#include "flowtop/util/os.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::enrich {

struct DnsResolver::Impl {
    ares_channel channel = nullptr;
    bool library = false;
    DnsResolver* owner = nullptr;
    // Answers that found the answer queue full wait here (worker-private) for the next round.
    std::deque<DnsAnswer> backlog;

    ~Impl() {
        if (channel) ares_destroy(channel);
        if (library) ares_library_cleanup();
    }
};

namespace {

struct Pending {
    DnsResolver::Impl* impl;
    DnsQuery query;
};

}  // namespace

DnsResolver::DnsResolver(DnsConfig config)
    : config_(config),
      queries_(config.queue_size),
      answers_(config.queue_size),
      impl_(std::make_unique<Impl>()) {
    if (int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS)
        throw Error(std::string("reverse DNS: cannot start c-ares: ") + ares_strerror(rc));
    impl_->library = true;
    impl_->owner = this;
    ares_options opts{};
    opts.timeout = static_cast<int>(config.timeout.count());
    opts.tries = config.tries;
    if (int rc = ares_init_options(&impl_->channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
        rc != ARES_SUCCESS)
        throw Error(std::string("reverse DNS: cannot read the resolver configuration: ") +
                    ares_strerror(rc));
    thread_ = signals::crash_safe_thread([this](std::stop_token stop) { run(stop); });
}

DnsResolver::~DnsResolver() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
}

bool DnsResolver::post(const DnsQuery& query) noexcept { return queries_.push(DnsQuery{query}); }

bool DnsResolver::poll(DnsAnswer& answer) noexcept { return answers_.pop(answer); }

namespace {

// Runs inside ares_process_fd on the worker thread; must not throw into c-ares.
void on_host(void* arg, int status, int /*timeouts*/, hostent* host) noexcept {
    std::unique_ptr<Pending> pending(static_cast<Pending*>(arg));
    if (status == ARES_EDESTRUCTION) return;  // shutting down
    try {
        DnsAnswer a;
        a.addr = pending->query.addr;
        a.family = pending->query.family;
        if (status == ARES_SUCCESS && host && host->h_name && *host->h_name) {
            a.found = true;
            // Whoever runs the reverse zone writes this name: a DNS name has at most 253
            // characters, so anything longer is cut there (and sanitized when interned).
            a.name = std::string(cap_utf8(host->h_name, k_max_dns_name));
        }
        pending->impl->backlog.push_back(std::move(a));
    } catch (...) {
        // bad_alloc: the answer is lost; the writer's pending entry expires and asks again.
    }
}

}  // namespace

void DnsResolver::run(std::stop_token stop) noexcept {
    auto& impl = *impl_;
    while (!stop.stop_requested()) {
        // Hand finished answers over first so the in-flight bound frees up.
        while (!impl.backlog.empty() && answers_.push(std::move(impl.backlog.front()))) {
            impl.backlog.pop_front();
            in_flight_.fetch_sub(1, std::memory_order_relaxed);
        }
        DnsQuery q;
        while (in_flight_.load(std::memory_order_relaxed) < config_.max_in_flight &&
               queries_.pop(q)) {
            std::unique_ptr<Pending> pending;
            try {
                pending = std::make_unique<Pending>(Pending{&impl, q});
            } catch (...) {
                break;  // out of memory: the query is dropped; the writer asks again later
            }
            in_flight_.fetch_add(1, std::memory_order_relaxed);
            // c-ares owns the request until on_host runs (always, even on ares_destroy).
            bool v4 = q.family == Family::ipv4;
            ares_gethostbyaddr(impl.channel, q.addr.bytes.data(), v4 ? 4 : 16,
                               v4 ? AF_INET : AF_INET6, on_host, pending.release());
        }

        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int mask = ares_getsock(impl.channel, socks, ARES_GETSOCK_MAXNUM);
        pollfd fds[ARES_GETSOCK_MAXNUM];
        nfds_t n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
            short ev = 0;
            if (ARES_GETSOCK_READABLE(mask, i)) ev |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(mask, i)) ev |= POLLOUT;
            if (ev) fds[n++] = {socks[i], ev, 0};
        }
        // Wake at least every 50 ms to take new queries and see a stop request.
        timeval max_tv{0, 50'000};
        timeval tv{};
        timeval* t = ares_timeout(impl.channel, &max_tv, &tv);
        int ms = static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000);
        int ready = os::poll(fds, n, ms);
        if (ready <= 0) {
            ares_process_fd(impl.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
            continue;
        }
        for (nfds_t i = 0; i < n; ++i) {
            ares_socket_t r =
                (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
            ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
            if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) ares_process_fd(impl.channel, r, w);
        }
    }
}

}  // namespace flowtop::enrich
