#pragma once
// Turns received netlink bytes into FlowRecords. Receiving is elsewhere (conntrack_io.hpp) so
// tests feed recorded buffers straight in.
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "flowtop/ct/flow_record.hpp"
#include "flowtop/util/handle.hpp"

struct nlmsghdr;

namespace flowtop::ct {

struct ParseResult {
    std::size_t messages = 0;  // netlink messages walked
    std::size_t flows = 0;     // conntrack messages handed to the sink
    std::size_t errors = 0;    // malformed or unparsable messages, skipped
    bool done = false;         // NLMSG_DONE seen (end of a dump)
    int netlink_error = 0;     // errno from an NLMSG_ERROR message, 0 when none
    std::size_t answers = 0;   // conntrack messages plus error messages: replies to requests
};

// A request the kernel refused, by the sequence number it was sent with.
struct RefusedRequest {
    std::uint32_t seq = 0;
    int error = 0;
};

class Parser {
  public:
    Parser() = default;
    Parser(const Parser&) = delete;
    Parser& operator=(const Parser&) = delete;

    // Walks every netlink message in `buf` and calls sink(const FlowRecord&) for each conntrack
    // message. Never throws for bad input: bad messages are counted and skipped.
    template <typename Sink>
    ParseResult parse(std::span<const std::byte> buf, Sink&& sink) {
        // Sink is a reference type for an lvalue sink: point at what it refers to.
        using Target = std::remove_reference_t<Sink>;
        ParseResult result;
        walk(
            buf, result, [](void* ctx, const FlowRecord& r) { (*static_cast<Target*>(ctx))(r); },
            const_cast<void*>(static_cast<const void*>(&sink)));
        return result;
    }

    // Parses one conntrack message; false when it is not one or is malformed.
    bool parse_message(const nlmsghdr* nlh, FlowRecord& out);

    // The requests refused in the last parse() call.
    const std::vector<RefusedRequest>& refused() const noexcept { return refused_; }

  private:
    using Callback = void (*)(void*, const FlowRecord&);
    void walk(std::span<const std::byte> buf, ParseResult& result, Callback cb, void* ctx);
    std::vector<RefusedRequest> refused_;
};

}  // namespace flowtop::ct
