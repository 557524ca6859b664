// Records conntrack netlink datagrams as the kernel sends them, for the parser's unit tests:
//   record_netlink dump FILE            one full dump
//   record_netlink events FILE SECONDS  every event datagram for SECONDS
// Each datagram is stored as a 4-byte little-endian length and the bytes.
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/ct/parser.hpp"

namespace {
void put(std::FILE* f, const std::byte* data, std::uint32_t len) {
    std::fwrite(&len, 4, 1, f);
    std::fwrite(data, 1, len, f);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: record_netlink dump|events FILE [SECONDS]\n");
        return 2;
    }
    std::string mode = argv[1];
    std::FILE* f = std::fopen(argv[2], "wb");
    if (!f) return 1;
    auto io = flowtop::ct::open_kernel_conntrack({.subscribe_events = mode == "events"});
    std::vector<std::byte> buf(1 << 16);
    flowtop::ct::Parser parser;
    if (mode == "dump") {
        io->start_dump();
        for (;;) {
            auto r = io->recv_dump(buf);
            if (r.error) return 1;
            put(f, buf.data(), static_cast<std::uint32_t>(r.bytes));
            auto res = parser.parse(std::span(buf.data(), r.bytes), [](const auto&) {});
            if (res.done) break;
        }
    } else {
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(std::atoi(argv[3]));
        while (std::chrono::steady_clock::now() < end) {
            pollfd p{io->event_fd(), POLLIN, 0};
            poll(&p, 1, 100);
            for (;;) {
                auto r = io->recv_events(buf);
                if (r.error) break;
                put(f, buf.data(), static_cast<std::uint32_t>(r.bytes));
            }
        }
    }
    std::fclose(f);
    return 0;
}
