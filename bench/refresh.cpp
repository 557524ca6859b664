// Times full counter refreshes (one dump of the whole table, parsed into the flow table) in the
// current network namespace, to compare against `conntrack -L` on the same table.
//   refresh [--rounds N]
#include <chrono>
#include <cstdio>
#include <string>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/table/collector.hpp"

int main(int argc, char** argv) {
    int rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2)
        if (std::string(argv[i]) == "--rounds") rounds = std::stoi(argv[i + 1]);
    auto io = flowtop::ct::open_kernel_conntrack({.subscribe_events = false});
    flowtop::table::SnapshotHub hub;
    flowtop::table::Collector collector(*io, hub, {});
    collector.full_dump(false);  // the first fills the table; later ones are refreshes
    double best = 1e9, total = 0;
    for (int r = 0; r < rounds; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        collector.full_dump(false);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, ms);
        total += ms;
    }
    std::printf("flows %zu refresh_ms_best %.1f refresh_ms_mean %.1f\n", collector.table().size(), best,
                total / rounds);
    return 0;
}
