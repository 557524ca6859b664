// The sock_diag parser and tuple matching on dumps recorded from known sockets
// (tests/data/capture_sock_diag.py, run in a fresh namespace).
#include "flowtop/enrich/proc_sock_diag.hpp"

#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace flowtop;
using namespace flowtop::enrich;

namespace {

std::vector<std::byte> read_bytes(const std::string& name) {
    std::ifstream in(std::string(FLOWTOP_TEST_DATA) + "/" + name, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) out[i] = static_cast<std::byte>(raw[i]);
    return out;
}

struct Recorded {
    std::uint32_t inode;
    std::uint16_t local_port;
    std::uint16_t remote_port;
};

std::map<std::string, Recorded> recorded_inodes() {
    std::ifstream in(std::string(FLOWTOP_TEST_DATA) + "/sock_diag_inodes.txt");
    std::map<std::string, Recorded> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ls(line);
        std::string name;
        Recorded r{};
        ls >> name >> r.inode >> r.local_port >> r.remote_port;
        out[name] = r;
    }
    return out;
}

std::vector<SocketEntry> parse_all() {
    std::vector<SocketEntry> all;
    for (auto [file, proto] : {std::pair{"sock_diag_tcp4.bin", IPPROTO_TCP},
                               {"sock_diag_tcp6.bin", IPPROTO_TCP},
                               {"sock_diag_udp4.bin", IPPROTO_UDP},
                               {"sock_diag_udp6.bin", IPPROTO_UDP}}) {
        auto bytes = read_bytes(file);
        auto r = parse_sock_diag(bytes, static_cast<std::uint8_t>(proto), all);
        EXPECT_TRUE(r.done) << file;
        EXPECT_EQ(r.errors, 0u) << file;
    }
    return all;
}

const SocketEntry* by_inode(const std::vector<SocketEntry>& all, std::uint32_t inode) {
    for (const auto& e : all)
        if (e.inode == inode) return &e;
    return nullptr;
}

Addr a(const char* text) { return parse_addr(text)->first; }

ct::FlowRecord flow(std::uint8_t proto, Family f, const char* src, std::uint16_t sport,
                    const char* dst, std::uint16_t dport) {
    ct::FlowRecord r;
    r.proto = proto;
    r.family = f;
    r.orig = {a(src), a(dst), sport, dport};
    r.reply = {a(dst), a(src), dport, sport};
    return r;
}

}  // namespace

TEST(SockDiagParser, FindsEveryRecordedSocketWithItsPorts) {
    auto all = parse_all();
    auto rec = recorded_inodes();
    ASSERT_EQ(rec.size(), 8u);
    for (const auto& [name, r] : rec) {
        const SocketEntry* e = by_inode(all, r.inode);
        ASSERT_NE(e, nullptr) << name;
        EXPECT_EQ(e->local_port, r.local_port) << name;
        EXPECT_EQ(e->remote_port, r.remote_port) << name;
        EXPECT_EQ(e->uid, 0u) << name;
    }
}

TEST(SockDiagParser, ReportsV4MappedSocketsAsIpv4) {
    auto all = parse_all();
    auto rec = recorded_inodes();
    const SocketEntry* accepted = by_inode(all, rec["accepted6"].inode);
    ASSERT_NE(accepted, nullptr);
    EXPECT_EQ(accepted->family, Family::ipv4);
    EXPECT_EQ(accepted->local.to_string(Family::ipv4), "127.0.0.1");
    EXPECT_EQ(accepted->remote.to_string(Family::ipv4), "127.0.0.1");
    const SocketEntry* listener = by_inode(all, rec["listen6"].inode);
    ASSERT_NE(listener, nullptr);
    EXPECT_TRUE(listener->wildcard_v6);
    const SocketEntry* udp6 = by_inode(all, rec["udp6"].inode);
    ASSERT_NE(udp6, nullptr);
    EXPECT_EQ(udp6->family, Family::ipv6);
    EXPECT_EQ(udp6->local.to_string(Family::ipv6), "::1");
}

TEST(SockDiagParser, TruncatedBufferIsCountedNotCrashed) {
    auto bytes = read_bytes("sock_diag_tcp4.bin");
    ASSERT_GT(bytes.size(), 40u);
    std::vector<SocketEntry> out;
    auto r = parse_sock_diag(std::span<const std::byte>(bytes.data(), bytes.size() - 30),
                             IPPROTO_TCP, out);
    EXPECT_FALSE(r.done);
    EXPECT_GE(r.errors, 1u);
    std::vector<std::byte> junk(7, std::byte{0xff});
    r = parse_sock_diag(junk, IPPROTO_TCP, out);
    EXPECT_EQ(r.messages, 0u);
}

// Found by tests/fuzz/sock_diag_fuzz: the error was negated as sent, and -INT_MIN overflows.
TEST(SockDiagParser, ErrorOutsideErrnoRangeIsAProtocolError) {
    struct {
        nlmsghdr nlh;
        nlmsgerr err;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = NLMSG_ERROR;
    msg.err.error = std::numeric_limits<int>::min();
    std::vector<std::byte> bytes(sizeof msg);
    std::memcpy(bytes.data(), &msg, sizeof msg);
    std::vector<SocketEntry> out;
    auto r = parse_sock_diag(bytes, IPPROTO_TCP, out);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.netlink_error, EPROTO);
    msg.err.error = -ENOENT;  // a real errno comes through as it is
    std::memcpy(bytes.data(), &msg, sizeof msg);
    EXPECT_EQ(parse_sock_diag(bytes, IPPROTO_TCP, out).netlink_error, ENOENT);
}

TEST(SocketIndex, MatchesClientAndServerEndsOfRecordedConnections) {
    auto all = parse_all();
    auto rec = recorded_inodes();
    SocketIndex index;
    index.build(all);

    // Seen from the client's end only (as if the server were elsewhere).
    auto c4 =
        flow(IPPROTO_TCP, Family::ipv4, "127.0.0.1", rec["client4"].local_port, "127.0.0.1", 7000);
    auto m = index.match(c4, true, false);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->inode, rec["client4"].inode);
    EXPECT_EQ(m->end, LocalEnd::client);
    // From the server's end only: the accepted socket, not the listener.
    m = index.match(c4, false, true);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->inode, rec["accepted4"].inode);
    EXPECT_EQ(m->end, LocalEnd::server);

    // An IPv4 client accepted by a dual-stack [::] listener: conntrack sees IPv4.
    auto c6 =
        flow(IPPROTO_TCP, Family::ipv4, "127.0.0.1", rec["client6"].local_port, "127.0.0.1", 7001);
    m = index.match(c6, false, true);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->inode, rec["accepted6"].inode);
}

TEST(SocketIndex, FallsBackToListenersAndUnconnectedUdp) {
    auto all = parse_all();
    auto rec = recorded_inodes();
    SocketIndex index;
    index.build(all);
    // A connection whose accepted socket is gone: the [::] listener receives IPv4 too.
    auto tcp = flow(IPPROTO_TCP, Family::ipv4, "198.51.100.7", 40000, "127.0.0.1", 7001);
    auto m = index.match(tcp, false, true);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->inode, rec["listen6"].inode);
    // A TCP client end never falls back to a listener on the same port.
    auto out = flow(IPPROTO_TCP, Family::ipv4, "127.0.0.1", 7000, "198.51.100.7", 80);
    EXPECT_FALSE(index.match(out, true, false));
    // UDP to 0.0.0.0:7002 from anywhere.
    auto udp = flow(IPPROTO_UDP, Family::ipv4, "203.0.113.9", 5353, "192.0.2.1", 7002);
    m = index.match(udp, false, true);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->inode, rec["udp4"].inode);
    // Neither end local: never matched, even on a bound port.
    EXPECT_FALSE(index.match(udp, false, false));
    // Connected UDP over IPv6.
    auto udp6 = flow(IPPROTO_UDP, Family::ipv6, "::1", 7003, "::1", 7004);
    m = index.match(udp6, true, false);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->inode, rec["udp6"].inode);
}
