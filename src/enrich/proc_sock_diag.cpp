#include "flowtop/enrich/proc_sock_diag.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "flowtop/util/error.hpp"
#include "flowtop/util/os.hpp"

namespace flowtop::enrich {
namespace {

constexpr std::uint8_t k_tcp_listen = 10;

bool is_zero(const Addr& a) noexcept {
    for (auto b : a.bytes)
        if (b) return false;
    return true;
}

// inet_diag gives addresses as four 32-bit words in network order; a v6 socket that talks to an
// IPv4 peer shows ::ffff:a.b.c.d, which conntrack records as a plain IPv4 tuple.
Family to_addr(std::uint8_t family, const __be32 words[4], Addr& out) noexcept {
    out = Addr{};
    if (family == AF_INET) {
        std::memcpy(out.bytes.data(), words, 4);
        return Family::ipv4;
    }
    std::memcpy(out.bytes.data(), words, 16);
    static constexpr std::uint8_t k_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(out.bytes.data(), k_mapped, 12) == 0) {
        Addr v4;
        std::memcpy(v4.bytes.data(), out.bytes.data() + 12, 4);
        out = v4;
        return Family::ipv4;
    }
    return Family::ipv6;
}

}  // namespace

SockDiagParseResult parse_sock_diag(std::span<const std::byte> buf, std::uint8_t proto,
                                    std::vector<SocketEntry>& out) {
    SockDiagParseResult result;
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    int len = static_cast<int>(buf.size());
    for (; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
        ++result.messages;
        if (nlh->nlmsg_type == NLMSG_DONE) {
            result.done = true;
            break;
        }
        if (nlh->nlmsg_type == NLMSG_ERROR) {
            if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr))) {
                const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
                // The kernel sends -errno; anything else is malformed (and -INT_MIN would
                // overflow: found by tests/fuzz/sock_diag_fuzz).
                if (err->error)
                    result.netlink_error =
                        err->error < 0 && err->error > -4096 ? -err->error : EPROTO;
            } else {
                ++result.errors;
            }
            result.done = true;
            break;
        }
        if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            nlh->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
            ++result.errors;
            continue;
        }
        const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(nlh));
        if (msg->idiag_family != AF_INET && msg->idiag_family != AF_INET6) {
            ++result.errors;
            continue;
        }
        SocketEntry e;
        e.proto = proto;
        e.state = msg->idiag_state;
        Family local_family = to_addr(msg->idiag_family, msg->id.idiag_src, e.local);
        Family remote_family = to_addr(msg->idiag_family, msg->id.idiag_dst, e.remote);
        e.family = local_family;
        // A v6 socket bound to [::] reports the unspecified address; a connected one may have a
        // mapped local address but a zero remote (unconnected UDP): the local side decides.
        if (msg->idiag_family == AF_INET6 && local_family == Family::ipv6 && is_zero(e.local))
            e.wildcard_v6 = true;
        if (remote_family != local_family && !is_zero(e.remote)) e.family = Family::ipv6;
        e.local_port = ntohs(msg->id.idiag_sport);
        e.remote_port = ntohs(msg->id.idiag_dport);
        e.uid = msg->idiag_uid;
        e.inode = msg->idiag_inode;
        out.push_back(e);
    }
    if (len > 0 && !result.done) ++result.errors;  // a truncated trailing message
    return result;
}

SockDiag::SockDiag() : buf_(std::size_t{64} * 1024) {
    fd_.reset(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!fd_) throw Error(errno_message("cannot open the sock_diag netlink socket", errno));
}

bool SockDiag::dump(std::uint8_t proto, Family family, std::vector<SocketEntry>& out) {
    struct {
        nlmsghdr nlh;
        inet_diag_req_v2 req;
    } request{};
    request.nlh.nlmsg_len = sizeof(request);
    request.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    request.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.nlh.nlmsg_seq = ++seq_;
    request.req.sdiag_family = family == Family::ipv4 ? AF_INET : AF_INET6;
    request.req.sdiag_protocol = proto;
    request.req.idiag_states = ~0u;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (os::sendto(fd_.get(), &request, sizeof(request), 0, reinterpret_cast<sockaddr*>(&kernel),
                   sizeof(kernel)) < 0)
        return false;
    if (record) recorded.clear();
    // Bounded: a dump of a million sockets is ~100 MB of messages in 64 kB reads.
    for (int reads = 0; reads < 1 << 16; ++reads) {
        ssize_t n = os::recv(fd_.get(), buf_.data(), buf_.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (n == 0) return false;
        std::span<const std::byte> bytes(buf_.data(), static_cast<std::size_t>(n));
        if (record) recorded.insert(recorded.end(), bytes.begin(), bytes.end());
        auto r = parse_sock_diag(bytes, proto, out);
        if (r.done) return r.netlink_error == 0;
    }
    return false;
}

std::size_t SocketIndex::KeyHash::operator()(const Key& k) const noexcept {
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const void* p, std::size_t n) {
        const auto* b = static_cast<const std::uint8_t*>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    mix(k.local.bytes.data(), 16);
    mix(k.remote.bytes.data(), 16);
    mix(&k.local_port, 2);
    mix(&k.remote_port, 2);
    mix(&k.proto, 1);
    return static_cast<std::size_t>(h);
}

void SocketIndex::build(const std::vector<SocketEntry>& sockets) {
    exact_.clear();
    bound_.clear();
    for (const auto& s : sockets) {
        if (!s.inode) continue;
        Key key{s.local, s.remote, s.local_port, s.remote_port, s.proto, s.family};
        bool connected = s.remote_port != 0 || !is_zero(s.remote);
        if (connected) {
            exact_.try_emplace(key, Owner{s.inode, s.uid});
        } else if (s.proto != IPPROTO_TCP || s.state == k_tcp_listen) {
            bound_.try_emplace(key, Owner{s.inode, s.uid});
        }
    }
    // A [::] socket receives IPv4 too; specific IPv4 bindings, added first, win.
    for (const auto& s : sockets) {
        if (!s.inode || !s.wildcard_v6 || s.remote_port != 0) continue;
        if (s.proto == IPPROTO_TCP && s.state != k_tcp_listen) continue;
        Key key{Addr{}, Addr{}, s.local_port, 0, s.proto, Family::ipv4};
        bound_.try_emplace(key, Owner{s.inode, s.uid});
    }
}

std::optional<SocketIndex::Owner> SocketIndex::find_exact(std::uint8_t proto, Family family,
                                                          const ct::Tuple& t) const {
    auto it = exact_.find(Key{t.src, t.dst, t.sport, t.dport, proto, family});
    if (it == exact_.end()) return std::nullopt;
    return it->second;
}

std::optional<SocketIndex::Owner> SocketIndex::find_bound(std::uint8_t proto, Family family,
                                                          const Addr& addr,
                                                          std::uint16_t port) const {
    auto it = bound_.find(Key{addr, Addr{}, port, 0, proto, family});
    if (it == bound_.end()) it = bound_.find(Key{Addr{}, Addr{}, port, 0, proto, family});
    if (it == bound_.end()) return std::nullopt;
    return it->second;
}

std::optional<SocketMatch> SocketIndex::match(const ct::FlowRecord& flow, bool client_local,
                                              bool server_local) const {
    if (flow.proto != IPPROTO_TCP && flow.proto != IPPROTO_UDP) return std::nullopt;
    auto found = [](std::optional<Owner> o, LocalEnd end) -> std::optional<SocketMatch> {
        if (!o) return std::nullopt;
        return SocketMatch{o->inode, o->uid, end};
    };
    if (client_local)
        if (auto o = find_exact(flow.proto, flow.family, flow.orig))
            return found(o, LocalEnd::client);
    if (server_local)
        if (auto o = find_exact(flow.proto, flow.family, flow.reply))
            return found(o, LocalEnd::server);
    // A TCP client always has its connected socket until it closes; only a server end falls
    // back to the listener (the accepted socket may already be closed, the listener owner
    // accepted it). Unconnected UDP sockets serve both ends.
    if (client_local && flow.proto == IPPROTO_UDP)
        if (auto o = find_bound(flow.proto, flow.family, flow.orig.src, flow.orig.sport))
            return found(o, LocalEnd::client);
    if (server_local)
        if (auto o = find_bound(flow.proto, flow.family, flow.reply.src, flow.reply.sport))
            return found(o, LocalEnd::server);
    return std::nullopt;
}

}  // namespace flowtop::enrich
