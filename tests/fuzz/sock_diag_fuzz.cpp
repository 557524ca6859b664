// libFuzzer target: NETLINK_SOCK_DIAG dump bytes through parse_sock_diag (as a TCP and as a UDP
// dump), then the parsed sockets into a SocketIndex and conntrack flows matched against it.
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "flowtop/enrich/proc_sock_diag.hpp"

using namespace flowtop;

namespace {

void fail(const char* what) {
    std::fprintf(stderr, "sock_diag_fuzz: %s\n", what);
    std::abort();
}

// The flow a local client socket makes, seen from conntrack: orig from the socket's end.
ct::FlowRecord client_flow(const enrich::SocketEntry& s) {
    ct::FlowRecord f;
    f.family = s.family;
    f.proto = s.proto;
    f.orig = {s.local, s.remote, s.local_port, s.remote_port};
    f.reply = {s.remote, s.local, s.remote_port, s.local_port};
    return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An aligned copy, as the dump's receive buffer is (see ct_parser_fuzz.cpp).
    std::vector<std::byte> buf(size);
    if (size) std::memcpy(buf.data(), data, size);

    for (std::uint8_t proto : {std::uint8_t{IPPROTO_TCP}, std::uint8_t{IPPROTO_UDP}}) {
        std::vector<enrich::SocketEntry> sockets;
        auto result = enrich::parse_sock_diag(buf, proto, sockets);
        // One error more than messages: a truncated trailing message is counted, not walked.
        if (sockets.size() + result.errors > result.messages + 1)
            fail("more results than messages");
        for (const auto& s : sockets)
            if (s.proto != proto) fail("a socket of another protocol than the dump's");

        enrich::SocketIndex index;
        index.build(sockets);
        // A socket bound to [::] is indexed twice: for IPv6 and for the IPv4 it also receives.
        if (index.size() > 2 * sockets.size()) fail("index larger than its sockets can make");
        for (const auto& s : sockets) {
            auto flow = client_flow(s);
            // A connected socket that a process holds is found by its own four-tuple as the
            // client end (the first socket with that tuple wins, so the inode may differ).
            const bool connected = s.remote_port != 0 || s.remote != Addr{};
            if (s.inode && connected) {
                auto match = index.match(flow, true, false);
                if (!match || match->end != enrich::LocalEnd::client || match->inode == 0)
                    fail("a connected socket is not found by its own tuple");
            }
            (void)index.match(flow, false, true);
            (void)index.match(flow, true, false);
        }
    }
    return 0;
}
