#pragma once
// Once set up (sockets open, settings written, files opened), flowtop keeps only the
// capabilities it still uses:
//   CAP_NET_ADMIN                          conntrack netlink, and writing the settings back
//   CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH   process attribution (/proc/PID/fd of every user)
//   CAP_SYS_ADMIN + CAP_SYS_PTRACE         --all-netns: setns into namespaces found later,
//                                          and opening /proc/PID/ns/net of other users
// and sets NoNewPrivs and SECBIT_NOROOT, so nothing it executes gains capabilities (not even as
// root). Capabilities belong to each thread: the drop reaches every thread of the process.
#include <cstdint>

namespace flowtop::privileges {

struct Needs {
    bool process_attribution = false;
    bool all_netns = false;
};

// The capability bits (1 << CAP_x) flowtop keeps for these needs.
std::uint64_t kept_mask(Needs needs) noexcept;

// Drops every capability not in `keep` in every thread, and sets NoNewPrivs. Throws
// flowtop::Error when a thread did not answer (then capabilities may remain).
void drop_all_threads(std::uint64_t keep);

// The calling thread only (the guardian, which has one). False when capset failed.
bool drop_this_thread(std::uint64_t keep) noexcept;

// The calling thread's effective capabilities.
std::uint64_t effective() noexcept;

}  // namespace flowtop::privileges
