// Times full counter refreshes (one dump of the whole table, parsed into the flow table) in the
// current network namespace, to compare against `conntrack -L` on the same table.
//   refresh [--rounds N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/table/collector.hpp"

namespace {
// CPU of this process (user + kernel: the kernel's side of the dump is charged to the reader).
double process_cpu_ms() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto ms = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
    };
    return ms(ru.ru_utime) + ms(ru.ru_stime);
}
}  // namespace

int main(int argc, char** argv) {
    int rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2)
        if (std::string(argv[i]) == "--rounds") rounds = std::stoi(argv[i + 1]);
    auto io = flowtop::ct::open_kernel_conntrack({.subscribe_events = false});
    flowtop::table::SnapshotHub hub;
    flowtop::table::Collector collector(*io, hub, {});
    collector.full_dump(false);  // the first fills the table; later ones are refreshes
    double best = 1e9, total = 0, cpu_best = 1e9, cpu_total = 0;
    for (int r = 0; r < rounds; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        const double c0 = process_cpu_ms();
        collector.full_dump(false);
        const double cpu = process_cpu_ms() - c0;
        cpu_best = std::min(cpu_best, cpu);
        cpu_total += cpu;
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count();
        best = std::min(best, ms);
        total += ms;
    }
    // cpu_ms: the CPU one full dump costs (user + kernel), the floor of a 1 s full sweep.
    std::printf(
        "flows %zu refresh_ms_best %.1f refresh_ms_mean %.1f cpu_ms_best %.1f cpu_ms_mean %.1f\n",
        collector.table().size(), best, total / rounds, cpu_best, cpu_total / rounds);
    return 0;
}
