#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <vector>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/util/error.hpp"

namespace flowtop::ct {
namespace {

using MnlSocket = CPtr<mnl_socket, mnl_socket_close>;

std::string permission_hint() {
    return "needs root (CAP_NET_ADMIN) to read the conntrack table: run it as root "
           "(sudo flowtop)";
}

MnlSocket open_socket(unsigned groups) {
    MnlSocket sock(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
    if (!sock) {
        int err = errno;
        if (err == EPROTONOSUPPORT || err == EAFNOSUPPORT)
            throw Error("conntrack netlink is not available in this kernel (nfnetlink is missing; "
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
    }

    int event_fd() const noexcept override {
        return events_ ? mnl_socket_get_fd(events_.get()) : -1;
    }

    RecvResult recv_events(std::span<std::byte> buf) noexcept override {
        if (!events_) return {0, EAGAIN};
        ssize_t n = recv(event_fd(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) return {0, errno};
        return {static_cast<std::size_t>(n), 0};
    }

    void start_dump() override {
        send_dump_request(++seq_);
    }

    RecvResult recv_dump(std::span<std::byte> buf) noexcept override {
        for (;;) {
            ssize_t n = recv(mnl_socket_get_fd(dump_.get()), buf.data(), buf.size(), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return {0, errno};
            return {static_cast<std::size_t>(n), 0};
        }
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
        if (used && mnl_socket_sendto(dump_.get(), buf.data(), used) < 0) return false;
        return true;
    }

private:
    static void describe_original(nf_conntrack* ct, const FlowRecord& f) {
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
        if (mnl_socket_sendto(dump_.get(), nlh, nlh->nlmsg_len) < 0) {
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
        if (mnl_socket_sendto(dump_.get(), nlh, nlh->nlmsg_len) < 0) {
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
                        throw Error("conntrack netlink is not available (is the "
                                    "nf_conntrack_netlink module loaded? try: modprobe "
                                    "nf_conntrack_netlink)");
                    throw Error(errno_message("the kernel refused the conntrack request", err));
                }
                if (msg->nlmsg_type == NLMSG_DONE) return;
                msg = mnl_nlmsg_next(msg, &len);
            }
        }
    }

    MnlSocket dump_;
    MnlSocket events_;
    unsigned seq_ = static_cast<unsigned>(time(nullptr));
};

}  // namespace

std::unique_ptr<ConntrackIo> open_kernel_conntrack(const KernelOptions& options) {
    return std::make_unique<KernelConntrack>(options);
}

}  // namespace flowtop::ct
