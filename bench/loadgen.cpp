// Conntrack load generator for benchmarks. Run it inside a test namespace (ip netns exec): it
// creates entries straight through ctnetlink, many messages per sendmsg, so a table of 100k+
// flows takes about a second, then keeps a chosen churn going for a bounded time.
//   loadgen --flows N [--churn R] [--updates U] [--seconds S]
// Entries use documentation addresses only (198.51.100.0/24 -> 203.0.113.0/24, 2001:db8::/32)
// and a mix of TCP (ESTABLISHED), UDP and ICMP over IPv4 and IPv6. It prints what it achieved.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/util/handle.hpp"

namespace {

using flowtop::CPtr;
using MnlSocket = CPtr<mnl_socket, mnl_socket_close>;
using Conntrack = CPtr<nf_conntrack, nfct_destroy>;

struct Config {
    long flows = 10000;
    long churn = 0;    // creations + destructions per second (each half)
    long updates = 0;  // updates per second
    double seconds = 0;
};

// Flow number n → a unique, deterministic tuple.
void describe(nf_conntrack* ct, std::uint64_t n) {
    const int kind = static_cast<int>(n % 6);  // tcp4 udp4 icmp4 tcp6 udp6 icmp6
    const bool v6 = kind >= 3;
    const int l4 = kind % 3;
    const std::uint32_t a = static_cast<std::uint32_t>(n / 6);
    const std::uint16_t sport = static_cast<std::uint16_t>(1024 + a % 60000);
    const std::uint32_t hi = a / 60000;  // picks addresses once ports run out
    if (!v6) {
        nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
        std::uint32_t src = htonl((198u << 24) | (51u << 16) | (100u << 8) | (1 + hi % 254));
        std::uint32_t dst = htonl((203u << 24) | (0u << 16) | (113u << 8) | (1 + (hi / 254) % 254));
        nfct_set_attr_u32(ct, ATTR_IPV4_SRC, src);
        nfct_set_attr_u32(ct, ATTR_IPV4_DST, dst);
    } else {
        nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET6);
        unsigned char src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1},
                      dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2};
        std::memcpy(src + 12, &hi, 4);
        nfct_set_attr(ct, ATTR_IPV6_SRC, src);
        nfct_set_attr(ct, ATTR_IPV6_DST, dst);
    }
    if (l4 == 2) {
        nfct_set_attr_u8(ct, ATTR_L4PROTO, static_cast<std::uint8_t>(v6 ? 58 : 1));
        nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, v6 ? 128 : 8);
        nfct_set_attr_u8(ct, ATTR_ICMP_CODE, 0);
        nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(sport));
    } else {
        nfct_set_attr_u8(ct, ATTR_L4PROTO, static_cast<std::uint8_t>(l4 == 0 ? 6 : 17));
        nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(sport));
        nfct_set_attr_u16(ct, ATTR_PORT_DST, htons(443));
        if (l4 == 0) nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3 /* ESTABLISHED */);
    }
    nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY);  // the reply tuple mirrors the original
}

class Batch {
  public:
    // Below the default socket send buffer (~208 kB): one sendmsg per batch must fit in it.
    explicit Batch(mnl_socket* sock) : sock_(sock), buf_(128 << 10) {}

    // op: IPCTNL_MSG_CT_NEW with create=true (new), false (update), or IPCTNL_MSG_CT_DELETE.
    void add(std::uint64_t n, int op, bool create, std::uint32_t mark = 0) {
        if (used_ + 512 > buf_.size()) flush();
        Conntrack ct(nfct_new());
        describe(ct.get(), n);
        if (op == IPCTNL_MSG_CT_NEW) {
            nfct_set_attr_u32(ct.get(), ATTR_TIMEOUT, 3600);
            nfct_set_attr_u32(ct.get(), ATTR_MARK, mark);
            if (create) nfct_set_attr_u32(ct.get(), ATTR_STATUS, IPS_ASSURED);
        }
        auto* nlh = mnl_nlmsg_put_header(buf_.data() + used_);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | op;
        nlh->nlmsg_flags = NLM_F_REQUEST | (std::getenv("LOADGEN_ACK") ? NLM_F_ACK : 0);
        if (op == IPCTNL_MSG_CT_NEW && create) nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
        nlh->nlmsg_seq = ++seq_;
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = nfct_get_attr_u8(ct.get(), ATTR_L3PROTO);
        nfh->version = NFNETLINK_V0;
        nfct_nlmsg_build(nlh, ct.get());
        used_ += NLMSG_ALIGN(nlh->nlmsg_len);
        ++pending_;
    }

    // Sends what is queued; counts the kernel's refusals (errors come back without NLM_F_ACK).
    void flush() {
        if (!used_) return;
        if (mnl_socket_sendto(sock_, buf_.data(), used_) < 0) ++errors_;
        sent_ += pending_;
        used_ = 0;
        pending_ = 0;
        drain_errors();
    }
    long sent() const { return sent_; }
    long errors() const { return errors_; }

  private:
    void drain_errors() {
        char rbuf[1 << 16];
        for (;;) {
            ssize_t n = recv(mnl_socket_get_fd(sock_), rbuf, sizeof rbuf, MSG_DONTWAIT);
            if (n <= 0) break;
            auto* nlh = reinterpret_cast<nlmsghdr*>(rbuf);
            int len = static_cast<int>(n);
            while (mnl_nlmsg_ok(nlh, len)) {
                if (nlh->nlmsg_type == NLMSG_ERROR) {
                    auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
                    if (e->error) {
                        ++errors_;
                        if (std::getenv("LOADGEN_ACK")) std::fprintf(stderr, "err %d\n", e->error);
                    }
                }
                nlh = mnl_nlmsg_next(nlh, &len);
            }
        }
    }
    mnl_socket* sock_;
    std::vector<char> buf_;
    std::size_t used_ = 0;
    long pending_ = 0, sent_ = 0, errors_ = 0;
    std::uint32_t seq_ = 0;
};

Config parse(int argc, char** argv) {
    Config c;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&] {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "loadgen: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return std::string(argv[++i]);
        };
        if (a == "--flows")
            c.flows = std::stol(next());
        else if (a == "--churn")
            c.churn = std::stol(next());
        else if (a == "--updates")
            c.updates = std::stol(next());
        else if (a == "--seconds")
            c.seconds = std::stod(next());
        else {
            std::fprintf(stderr,
                         "usage: loadgen --flows N [--churn R] [--updates U] [--seconds S]\n");
            std::exit(2);
        }
    }
    return c;
}

}  // namespace

int main(int argc, char** argv) {
    Config cfg = parse(argc, argv);
    MnlSocket sock(mnl_socket_open(NETLINK_NETFILTER));
    if (!sock || mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        std::perror("loadgen: netlink");
        return 1;
    }
    int big = 32 << 20;
    setsockopt(mnl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    Batch batch(sock.get());

    auto t0 = std::chrono::steady_clock::now();
    for (long n = 0; n < cfg.flows; ++n)
        batch.add(static_cast<std::uint64_t>(n), IPCTNL_MSG_CT_NEW, true);
    batch.flush();
    double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("created %ld entries in %.2f s (%ld refused)\n", cfg.flows, fill_s, batch.errors());
    std::fflush(stdout);

    if (cfg.seconds <= 0) return 0;
    // Churn: create new entries and delete the oldest ones, keeping the table size steady.
    std::uint64_t next_new = static_cast<std::uint64_t>(cfg.flows);
    std::uint64_t oldest = 0;
    std::uint64_t update_cursor = 0;
    std::uint32_t mark = 1;
    long created = 0, destroyed = 0, updated = 0;
    const long errors_before = batch.errors();
    const auto step = std::chrono::milliseconds(10);
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration<double>(cfg.seconds);
    auto tick = start;
    double carry_churn = 0, carry_upd = 0;
    while (std::chrono::steady_clock::now() < end) {
        tick += step;
        carry_churn += cfg.churn * 0.01 / 2;
        carry_upd += cfg.updates * 0.01;
        for (; carry_churn >= 1; carry_churn -= 1) {
            batch.add(next_new++, IPCTNL_MSG_CT_NEW, true);
            batch.add(oldest++, IPCTNL_MSG_CT_DELETE, false);
            ++created;
            ++destroyed;
        }
        for (; carry_upd >= 1; carry_upd -= 1) {
            std::uint64_t live = next_new - oldest;
            if (!live) {
                carry_upd = 0;
                break;
            }
            batch.add(oldest + (update_cursor++ % live), IPCTNL_MSG_CT_NEW, false, ++mark);
            ++updated;
        }
        batch.flush();
        std::this_thread::sleep_until(tick);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "churn for %.1f s: %.0f creations/s, %.0f destructions/s, %.0f updates/s (%ld refused)\n",
        secs, created / secs, destroyed / secs, updated / secs, batch.errors() - errors_before);
    return 0;
}
