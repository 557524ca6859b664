#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/util/error.hpp"

namespace flowtop::ct {
namespace {

using MnlSocket = CPtr<mnl_socket, mnl_socket_close>;

std::string permission_hint() {
    return "flowtop needs CAP_NET_ADMIN to read the conntrack table: run it as root "
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

private:
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

    // One dump at open time turns "no permission" and "no conntrack netlink" into clear errors
    // before anything else starts; the collector makes its own first dump afterwards.
    void probe() {
        send_dump_request(++seq_);
        alignas(nlmsghdr) std::byte buf[1 << 16];
        for (;;) {
            auto r = recv_dump(buf);
            if (r.error) throw Error(errno_message("cannot read the conntrack table", r.error));
            int len = static_cast<int>(r.bytes);
            auto* nlh = reinterpret_cast<const nlmsghdr*>(buf);
            while (mnl_nlmsg_ok(nlh, len)) {
                if (nlh->nlmsg_type == NLMSG_DONE) return;
                if (nlh->nlmsg_type == NLMSG_ERROR) {
                    const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
                    int err = -e->error;
                    if (err == 0) return;
                    if (err == EPERM || err == EACCES) throw Error(permission_hint());
                    if (err == EOPNOTSUPP || err == ENOENT || err == EPROTONOSUPPORT)
                        throw Error("conntrack netlink is not available (is the "
                                    "nf_conntrack_netlink module loaded? try: modprobe "
                                    "nf_conntrack_netlink)");
                    throw Error(errno_message("the kernel refused the conntrack dump", err));
                }
                nlh = mnl_nlmsg_next(nlh, &len);
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
