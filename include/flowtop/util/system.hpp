#pragma once
// Small checks and changes of the process's situation, each throwing flowtop::Error with a
// message for the user.
#include <cstdint>
#include <string>

#include "flowtop/util/handle.hpp"

namespace flowtop {

// Does the process hold CAP_NET_ADMIN (effective)? Read from /proc/self/status.
bool has_net_admin() noexcept;

// Makes sure descriptors 0, 1 and 2 are open before flowtop opens anything: a file opened on a
// closed descriptor 1 (a settings file!) would receive the batch output. A closed stdin or
// stderr becomes /dev/null; a closed stdout is an error (nowhere to write the output).
void check_standard_streams();

// Throws the "run it as root" error when CAP_NET_ADMIN is missing.
void require_net_admin();

// Moves the calling thread (and the threads it starts later) into the network namespace that
// `ip netns` calls `name` (/run/netns/NAME), or a path to a namespace file.
void enter_netns(const std::string& name);

// Raises the soft limit of open files to the hard limit (quietly keeps it when it cannot).
void raise_open_file_limit() noexcept;

// glibc gives each thread that allocates an arena of its own and keeps what is freed there;
// with rows passing from the writer to the view and the exporters, RSS then breathes with the
// churn (bench/soak). Caps the arenas, unless MALLOC_ARENA_MAX or GLIBC_TUNABLES says
// otherwise. Call before any thread starts.
void cap_malloc_arenas() noexcept;

// Opens a namespace file (/run/netns/NAME, /proc/PID/ns/net) for setns; throws when it cannot.
UniqueFd open_netns(const std::string& path);

// The inode that identifies a namespace file's namespace (as `ip netns identify` and lsns
// compare them); 0 when it cannot be read.
std::uint64_t netns_inode(const std::string& path) noexcept;

// The inode in a namespace link's text, "net:[4026531840]"; 0 when it is not one.
std::uint64_t parse_netns_link(const std::string& link) noexcept;
// The network namespace a /proc/PID/ns/net link names (readlink, not stat: no need to open
// the namespace); 0 when it cannot be read.
std::uint64_t netns_link_inode(const std::string& link_path) noexcept;

// Moves the calling thread into another network namespace for a scope; sockets it opens there,
// and threads it starts there, stay in that namespace. Only this thread moves.
class ScopedNetns {
  public:
    explicit ScopedNetns(int netns_fd);  // throws flowtop::Error
    ~ScopedNetns();
    ScopedNetns(const ScopedNetns&) = delete;
    ScopedNetns& operator=(const ScopedNetns&) = delete;

  private:
    UniqueFd home_;
};

}  // namespace flowtop
