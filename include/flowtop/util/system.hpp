#pragma once
// Small checks and changes of the process's situation, each throwing flowtop::Error with a
// message for the user.
#include <string>

namespace flowtop {

// Does the process hold CAP_NET_ADMIN (effective)? Read from /proc/self/status.
bool has_net_admin() noexcept;

// Throws the "run it as root" error when CAP_NET_ADMIN is missing.
void require_net_admin();

// Moves the calling thread (and the threads it starts later) into the network namespace that
// `ip netns` calls `name` (/run/netns/NAME), or a path to a namespace file.
void enter_netns(const std::string& name);

}  // namespace flowtop
