// Cost of process attribution at scale: N processes holding M sockets in total, a flow table
// with one flow per socket, a 1 s tick. Prints CPU per tick (all threads of this process) and
// /proc reads per tick, without attribution, for the first attribution of every flow, and in
// steady state with and without new flows. A program, not a test: run as root.
//   proc_attribution_bench [--procs 2000] [--sockets 20000] [--ticks 5] [--new 100]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "flowtop/enrich/proc_attributor.hpp"
#include "flowtop/table/flow_table.hpp"

using namespace flowtop;

namespace {

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// A child holding `count` connected UDP sockets on 127.0.0.1; reports their ports by pipe.
pid_t spawn_holder(int count, std::vector<std::uint16_t>& ports) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < count; ++i) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(9);
            connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));  // no packet: just a tuple
            socklen_t len = sizeof(a);
            getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
            std::uint16_t port = ntohs(a.sin_port);
            if (write(fds[1], &port, sizeof(port)) != sizeof(port)) _exit(1);
        }
        close(fds[1]);
        pause();
        _exit(0);
    }
    close(fds[1]);
    std::uint16_t port;
    while (read(fds[0], &port, sizeof(port)) == sizeof(port)) ports.push_back(port);
    close(fds[0]);
    return pid;
}

ct::FlowRecord flow_for(std::uint32_t id, std::uint16_t port) {
    ct::FlowRecord r;
    r.id = id;
    r.kind = ct::MsgKind::dump;
    r.family = Family::ipv4;
    r.proto = IPPROTO_UDP;
    Addr lo = Addr::v4(htonl(INADDR_LOOPBACK));
    r.orig = {lo, lo, port, 9};
    r.reply = {lo, lo, 9, port};
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    int procs = 2000, sockets = 20000, ticks = 5, fresh_per_tick = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        int v = std::atoi(argv[i + 1]);
        if (k == "--procs")
            procs = v;
        else if (k == "--sockets")
            sockets = v;
        else if (k == "--ticks")
            ticks = v;
        else if (k == "--new")
            fresh_per_tick = v;
    }
    rlimit nofile{static_cast<rlim_t>(sockets + 1024), static_cast<rlim_t>(sockets + 1024)};
    setrlimit(RLIMIT_NOFILE, &nofile);

    std::vector<pid_t> children;
    std::vector<std::uint16_t> ports;
    int per = sockets / procs;
    // The flows to add while running come from the last tenth of the processes.
    for (int i = 0; i < procs; ++i) children.push_back(spawn_holder(per, ports));
    std::printf("%d processes holding %zu sockets\n", procs, ports.size());

    table::FlowTable table;
    StringPool strings;
    std::size_t initial = ports.size() - static_cast<std::size_t>(fresh_per_tick) * ticks;
    std::uint32_t next_id = 1;
    for (std::size_t i = 0; i < initial; ++i) table.apply(flow_for(next_id++, ports[i]), 0);
    std::size_t cursor = initial;

    auto run = [&](const char* label, enrich::ProcAttributor* proc, int n_ticks, int add) {
        double cpu0 = cpu_seconds();
        std::uint64_t reads0 = proc ? proc->stats().proc_reads.load() : 0;
        std::uint64_t dumps0 = proc ? proc->stats().dumps.load() : 0;
        for (int t = 0; t < n_ticks; ++t) {
            for (int k = 0; k < add && cursor < ports.size(); ++k)
                table.apply(flow_for(next_id++, ports[cursor++]), 0);
            table.tick(1.0);
            if (proc) table::tick_with(*proc, table, strings, 0);
            std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        double cpu = (cpu_seconds() - cpu0) / n_ticks;
        std::printf("%-34s cpu/tick %7.2f ms (%5.2f%% of a core)", label, cpu * 1e3, cpu * 100);
        if (proc)
            std::printf("  /proc reads/tick %8.1f  sock_diag dumps/tick %.1f  attributed %llu",
                        static_cast<double>(proc->stats().proc_reads - reads0) / n_ticks,
                        static_cast<double>(proc->stats().dumps - dumps0) / n_ticks,
                        static_cast<unsigned long long>(proc->stats().attributed.load()));
        std::printf("\n");
    };

    run("no attribution", nullptr, ticks, 0);
    {
        enrich::ProcAttributor proc({.watch_new_flows = false});
        proc.add_namespace(0);  // the bench's flows are source 0, in this namespace
        run("attribution: first tick (all)", &proc, 1, 0);
        run("attribution: settling (rest)", &proc, 2, 0);
        run("attribution: steady, no new flows", &proc, ticks, 0);
        run("attribution: steady, new flows", &proc, ticks, fresh_per_tick);
        std::size_t with_pid = 0;
        table.for_each([&](const table::FlowRow& r) { with_pid += r.pid != 0; });
        std::printf("flows %zu, attributed to a pid %zu\n", table.size(), with_pid);
    }
    for (pid_t c : children) kill(c, SIGKILL);
    for (pid_t c : children) waitpid(c, nullptr, 0);
    return 0;
}
