#include "flowtop/enrich/proc_info.hpp"

#include <sys/stat.h>

#include "flowtop/util/procfs.hpp"
#include "flowtop/util/system.hpp"

namespace flowtop::enrich {

bool read_proc_info(const std::string& proc_root, std::uint32_t pid, ProcInfo& out) {
    std::string dir = proc_root + "/" + std::to_string(pid);
    out = ProcInfo{};
    out.pid = pid;
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return false;
    out.uid = st.st_uid;  // the process's effective uid owns its /proc directory
    out.comm = read_small_file(dir + "/comm", 64);
    while (!out.comm.empty() && out.comm.back() == '\n') out.comm.pop_back();
    out.cmdline = read_small_file(dir + "/cmdline", 4096);
    while (!out.cmdline.empty() && out.cmdline.back() == '\0') out.cmdline.pop_back();
    for (auto& c : out.cmdline)
        if (c == '\0') c = ' ';
    out.user = user_name(out.uid);
    out.container = container_of_cgroup(read_small_file(dir + "/cgroup"));
    out.netns = netns_link_inode(dir + "/ns/net");
    return !out.comm.empty() || !out.cmdline.empty();
}

}  // namespace flowtop::enrich
