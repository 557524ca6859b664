#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/handle.hpp"
#include "flowtop/util/os.hpp"

namespace flowtop::ct {
namespace {

using MnlSocket = CPtr<mnl_socket, mnl_socket_close>;

// True when this process runs in a user namespace that does not own its network namespace
// (a rootless container, `unshare --user`): it may hold every capability, but only there, and
// the kernel answers conntrack netlink with EPERM. "Run it as root" would not help.
bool capabilities_only_in_a_foreign_user_namespace() noexcept {
    UniqueFd net(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!net) return false;
    UniqueFd owner(ioctl(net.get(), NS_GET_USERNS));
    // EPERM: the owner is an ancestor of our user namespace, outside what we may see.
    if (!owner) return errno == EPERM;
    struct stat owner_st {
    }, ours{};
    if (fstat(owner.get(), &owner_st) != 0 || stat("/proc/self/ns/user", &ours) != 0) return false;
    return owner_st.st_ino != ours.st_ino || owner_st.st_dev != ours.st_dev;
}

std::string permission_hint() {
    if (capabilities_only_in_a_foreign_user_namespace())
        return "the kernel refused conntrack netlink: flowtop runs in a user namespace that does "
               "not own its network namespace (a rootless container, unshare --user), so its "
               "capabilities do not count there; run it as root in the namespace that owns the "
               "network (on the host: sudo flowtop, or --netns NAME)";
    return "needs root (CAP_NET_ADMIN) to read the conntrack table: run it as root "
           "(sudo flowtop)";
}

MnlSocket open_socket(unsigned groups) {
    MnlSocket sock(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
    if (!sock) {
        int err = errno;
        if (err == EPROTONOSUPPORT || err == EAFNOSUPPORT)
            throw Error(
                "conntrack netlink is not available in this kernel (nfnetlink is missing; "
                "try: modprobe nf_conntrack_netlink)");
        throw Error(errno_message("cannot open a netfilter netlink socket", err));
    }
    if (mnl_socket_bind(sock.get(), groups, MNL_SOCKET_AUTOPID) < 0) {
        int err = errno;
        if (err == EPERM || err == EACCES) throw Error(permission_hint());
        throw Error(errno_message("cannot bind the conntrack netlink socket", err));
    }
    return sock;
}

// The original tuple, zone and id: what GET and DELETE find one entry by.
void describe_original(nf_conntrack* ct, const FlowRecord& f) {
    const bool v4 = f.family == Family::ipv4;
    nfct_set_attr_u8(ct, ATTR_L3PROTO, v4 ? AF_INET : AF_INET6);
    nfct_set_attr_u8(ct, ATTR_L4PROTO, f.proto);
    if (v4) {
        std::uint32_t src, dst;
        std::memcpy(&src, f.orig.src.bytes.data(), 4);
        std::memcpy(&dst, f.orig.dst.bytes.data(), 4);
        nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, src);
        nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST, dst);
    } else {
        nfct_set_attr(ct, ATTR_ORIG_IPV6_SRC, f.orig.src.bytes.data());
        nfct_set_attr(ct, ATTR_ORIG_IPV6_DST, f.orig.dst.bytes.data());
    }
    if (f.proto == IPPROTO_ICMP || f.proto == IPPROTO_ICMPV6) {
        nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, f.icmp_type);
        nfct_set_attr_u8(ct, ATTR_ICMP_CODE, f.icmp_code);
        nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(f.icmp_id));
    } else {
        nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(f.orig.sport));
        nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(f.orig.dport));
    }
    nfct_set_attr_u16(ct, ATTR_ZONE, f.zone);
    // With the id, a new flow that reuses the tuple answers ENOENT instead of posing as ours.
    nfct_set_attr_u32(ct, ATTR_ID, f.id);
}

class KernelConntrack final : public ConntrackIo {
  public:
    explicit KernelConntrack(const KernelOptions& options) {
        dump_ = open_socket(0);
        // Batched GET answers pile up here before they are read: room for a few thousand.
        int dump_buffer = 8 << 20;
        if (setsockopt(mnl_socket_get_fd(dump_.get()), SOL_SOCKET, SO_RCVBUFFORCE, &dump_buffer,
                       sizeof dump_buffer) != 0)
            setsockopt(mnl_socket_get_fd(dump_.get()), SOL_SOCKET, SO_RCVBUF, &dump_buffer,
                       sizeof dump_buffer);
        int one = 1;
        // Extended ACKs give the kernel's reason with an error.
        mnl_socket_setsockopt(dump_.get(), NETLINK_EXT_ACK, &one, sizeof one);
        if (options.subscribe_events) {
            events_ = open_socket(NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE |
                                  NF_NETLINK_CONNTRACK_DESTROY);
            int fd = mnl_socket_get_fd(events_.get());
            int size = options.event_buffer_bytes;
            // RCVBUFFORCE passes net.core.rmem_max with CAP_NET_ADMIN; fall back when refused.
            if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        }
        probe();
        stats_ = open_socket(0);
        // /proc/sys/net answers for the namespace of whoever opens the file: opened here,
        // inside the watched namespace, they keep answering for it from any thread.
        max_file_ =
            UniqueFd(open("/proc/sys/net/netfilter/nf_conntrack_max", O_RDONLY | O_CLOEXEC));
        buckets_file_ =
            UniqueFd(open("/proc/sys/net/netfilter/nf_conntrack_buckets", O_RDONLY | O_CLOEXEC));
    }

    bool read_table_stats(TableStats& out) noexcept override {
        TableStats stats;
        if (!ask_stats(IPCTNL_MSG_CT_GET_STATS, NLM_F_ACK, stats)) return false;
        if (!ask_stats(IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_DUMP, stats)) return false;
        // Kernels before 4.x send no CTA_STATS_GLOBAL_MAX_ENTRIES: the file has it too.
        if (stats.max == 0) stats.max = read_number(max_file_.get());
        stats.buckets = read_number(buckets_file_.get());
        out = stats;
        return true;
    }

    int event_fd() const noexcept override {
        return events_ ? mnl_socket_get_fd(events_.get()) : -1;
    }

    RecvResult recv_events(std::span<std::byte> buf) noexcept override {
        if (!events_) return {0, EAGAIN};
        ssize_t n = os::recv(event_fd(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) return {0, errno};
        return {static_cast<std::size_t>(n), 0};
    }

    void start_dump() override {
        discard_unread();
        send_dump_request(++seq_);
    }

    RecvResult recv_dump(std::span<std::byte> buf) noexcept override {
        ssize_t n = os::recv(mnl_socket_get_fd(dump_.get()), buf.data(), buf.size(), 0);
        if (n < 0) {
            unread_ = true;  // what the kernel still sends for this request must not pose as
                             // the answer to the next one
            return {0, errno};
        }
        return {static_cast<std::size_t>(n), 0};
    }

    bool request_flows(std::span<const FlowRecord> flows, std::uint32_t first_seq) override {
        using Conntrack = CPtr<nf_conntrack, nfct_destroy>;
        std::vector<char> buf(flows.size() * 256 + MNL_SOCKET_BUFFER_SIZE);
        std::size_t used = 0;
        for (std::size_t i = 0; i < flows.size(); ++i) {
            const FlowRecord& f = flows[i];
            Conntrack ct(nfct_new());
            if (!ct) return false;
            describe_original(ct.get(), f);
            auto* nlh = mnl_nlmsg_put_header(buf.data() + used);
            nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
            nlh->nlmsg_flags = NLM_F_REQUEST;
            nlh->nlmsg_seq = first_seq + static_cast<std::uint32_t>(i);
            auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
            nfh->nfgen_family = f.family == Family::ipv4 ? AF_INET : AF_INET6;
            nfh->version = NFNETLINK_V0;
            nfh->res_id = 0;
            if (nfct_nlmsg_build(nlh, ct.get()) < 0) return false;
            used += NLMSG_ALIGN(nlh->nlmsg_len);
        }
        discard_unread();
        return used == 0 || send_to_kernel(buf.data(), used);
    }

  private:
    bool send_to_kernel(const void* data, std::size_t len) noexcept {
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        return os::sendto(mnl_socket_get_fd(dump_.get()), data, len, 0,
                          reinterpret_cast<const sockaddr*>(&kernel),
                          sizeof kernel) == static_cast<ssize_t>(len);
    }

    // A read that failed (ENOBUFS, or the collector gave up on a dump or a batch of GETs)
    // leaves the rest of that answer queued on the socket. Read it away before the next
    // request, so that a new dump never starts with the tail of the old one. Reading also lets
    // the kernel finish an interrupted dump, which it resumes as the socket drains.
    void discard_unread() noexcept {
        if (!unread_) return;
        unread_ = false;
        alignas(nlmsghdr) static thread_local std::byte scratch[1 << 16];
        const int fd = mnl_socket_get_fd(dump_.get());
        for (int i = 0; i < 1 << 20; ++i) {
            const ssize_t n = os::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
            if (n < 0 && errno != ENOBUFS) break;
        }
    }

    void send_dump_request(unsigned seq) {
        alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
        nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_seq = seq;
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = AF_UNSPEC;  // every layer-3 family in one dump
        nfh->version = NFNETLINK_V0;
        nfh->res_id = 0;
        if (!send_to_kernel(nlh, nlh->nlmsg_len)) {
            int err = errno;
            if (err == EPERM || err == EACCES) throw Error(permission_hint());
            throw Error(errno_message("cannot ask the kernel for the conntrack table", err));
        }
    }

    // One small request at open time (the table's global counters, answered in one message,
    // unlike a dump) turns "no permission" and "no conntrack netlink" into clear errors before
    // anything else starts.
    void probe() {
        alignas(nlmsghdr) char req[MNL_SOCKET_BUFFER_SIZE];
        nlmsghdr* nlh = mnl_nlmsg_put_header(req);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        nlh->nlmsg_seq = ++seq_;
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = AF_UNSPEC;
        nfh->version = NFNETLINK_V0;
        if (!send_to_kernel(nlh, nlh->nlmsg_len)) {
            int err = errno;
            if (err == EPERM || err == EACCES) throw Error(permission_hint());
            throw Error(errno_message("cannot ask the kernel for the conntrack table", err));
        }
        alignas(nlmsghdr) std::byte buf[1 << 16];
        for (;;) {
            auto r = recv_dump(buf);
            if (r.error) throw Error(errno_message("cannot read the conntrack table", r.error));
            int len = static_cast<int>(r.bytes);
            auto* msg = reinterpret_cast<const nlmsghdr*>(buf);
            while (mnl_nlmsg_ok(msg, len)) {
                if (msg->nlmsg_type == NLMSG_ERROR) {
                    const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg));
                    int err = -e->error;
                    if (err == 0) return;  // the ACK after the answer
                    if (err == EPERM || err == EACCES) throw Error(permission_hint());
                    if (err == EOPNOTSUPP || err == ENOENT || err == EPROTONOSUPPORT)
                        throw Error(
                            "conntrack netlink is not available (is the "
                            "nf_conntrack_netlink module loaded? try: modprobe "
                            "nf_conntrack_netlink)");
                    throw Error(errno_message("the kernel refused the conntrack request", err));
                }
                if (msg->nlmsg_type == NLMSG_DONE) return;
                msg = mnl_nlmsg_next(msg, &len);
            }
        }
    }

    static std::uint64_t read_number(int fd) noexcept {
        if (fd < 0) return 0;
        char text[32];
        ssize_t n = os::pread_full(fd, text, sizeof text, 0);
        if (n <= 0) return 0;
        std::uint64_t v = 0;
        std::from_chars(text, text + n, v);
        return v;
    }

    // One stats request and its answers, read to the end (ACK or NLMSG_DONE) on its own socket.
    bool ask_stats(std::uint16_t type, std::uint16_t flags, TableStats& stats) noexcept {
        alignas(nlmsghdr) char req[MNL_SOCKET_BUFFER_SIZE];
        nlmsghdr* nlh = mnl_nlmsg_put_header(req);
        nlh->nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | type);
        nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
        const unsigned seq = ++seq_;
        nlh->nlmsg_seq = seq;
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = AF_UNSPEC;
        nfh->version = NFNETLINK_V0;
        nfh->res_id = 0;
        const int fd = mnl_socket_get_fd(stats_.get());
        if (mnl_socket_sendto(stats_.get(), nlh, nlh->nlmsg_len) < 0) return false;
        // Bounded: one answer per CPU plus the end; a socket that goes quiet is an error.
        for (int reads = 0; reads < 4096; ++reads) {
            pollfd p{fd, POLLIN, 0};
            if (os::poll(&p, 1, 1000) <= 0) return false;
            ssize_t n = os::recv(fd, stats_buf_, sizeof stats_buf_, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            // Answers to an older request that timed out are not ours.
            auto* first = reinterpret_cast<const nlmsghdr*>(stats_buf_);
            if (static_cast<std::size_t>(n) >= sizeof(nlmsghdr) && first->nlmsg_seq != seq)
                continue;
            auto r = parse_table_stats(
                std::span<const std::byte>(stats_buf_, static_cast<std::size_t>(n)), stats);
            if (r.netlink_error) return false;
            if (r.done) return true;
        }
        return false;
    }

    MnlSocket dump_;
    MnlSocket events_;
    bool unread_ = false;
    MnlSocket stats_;
    UniqueFd max_file_;
    UniqueFd buckets_file_;
    alignas(nlmsghdr) std::byte stats_buf_[1 << 16];
    unsigned seq_ = static_cast<unsigned>(time(nullptr));
};

// One request at a time on a socket of its own, answered by an ACK: deleting is rare (a key
// press, a batch run), so it never shares the dump's socket or its sequence numbers.
class KernelFlowDeleter final : public FlowDeleter {
  public:
    KernelFlowDeleter() : sock_(open_socket(0)) {}

    int remove(const FlowRecord& f) noexcept override {
        using Conntrack = CPtr<nf_conntrack, nfct_destroy>;
        Conntrack ct(nfct_new());
        if (!ct) return ENOMEM;
        describe_original(ct.get(), f);
        alignas(nlmsghdr) char req[MNL_SOCKET_BUFFER_SIZE];
        nlmsghdr* nlh = mnl_nlmsg_put_header(req);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        const unsigned seq = ++seq_;
        nlh->nlmsg_seq = seq;
        auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfh->nfgen_family = f.family == Family::ipv4 ? AF_INET : AF_INET6;
        nfh->version = NFNETLINK_V0;
        nfh->res_id = 0;
        if (nfct_nlmsg_build(nlh, ct.get()) < 0) return EINVAL;
        if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return errno;
        const int fd = mnl_socket_get_fd(sock_.get());
        // Bounded: the ACK comes at once; a socket that stays quiet for a second is an error.
        for (int reads = 0; reads < 64; ++reads) {
            pollfd p{fd, POLLIN, 0};
            if (os::poll(&p, 1, 1000) <= 0) return ETIMEDOUT;
            ssize_t n = os::recv(fd, buf_, sizeof buf_, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return errno;
            int len = static_cast<int>(n);
            auto* msg = reinterpret_cast<const nlmsghdr*>(buf_);
            for (; mnl_nlmsg_ok(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
                if (msg->nlmsg_seq != seq || msg->nlmsg_type != NLMSG_ERROR) continue;
                const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg));
                return -e->error;  // 0: the ACK
            }
        }
        return ETIMEDOUT;
    }

  private:
    MnlSocket sock_;
    alignas(nlmsghdr) std::byte buf_[8192];
    unsigned seq_ = static_cast<unsigned>(time(nullptr));
};

}  // namespace

std::unique_ptr<FlowDeleter> open_flow_deleter() { return std::make_unique<KernelFlowDeleter>(); }

std::unique_ptr<ConntrackIo> open_kernel_conntrack(const KernelOptions& options) {
    return std::make_unique<KernelConntrack>(options);
}

}  // namespace flowtop::ct
