// flowtop: options and wiring only; everything a test would want lives in the libraries.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <thread>

#include "flowtop/ct/conntrack_io.hpp"
#include "flowtop/enrich/proc_attributor.hpp"
#include "flowtop/enrich/enricher.hpp"
#include "flowtop/netns/all_netns.hpp"
#include "flowtop/table/collector.hpp"
#include "flowtop/ui/batch_runner.hpp"
#include "flowtop/ui/options.hpp"
#include "flowtop/ui/top_view.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/signals.hpp"
#include "flowtop/util/sysctl_guard.hpp"
#include "flowtop/util/system.hpp"

namespace {

std::unique_ptr<flowtop::enrich::Enricher> make_enricher(const flowtop::ui::Options& options) {
    using namespace flowtop;
    std::vector<std::string> notes;
    auto services = enrich::load_services(options.conf_dir, notes);
    enrich::GeoIp geo;
    if (!options.no_geoip) geo = enrich::GeoIp::open(options.geoip_dbs, notes);
    std::unique_ptr<enrich::DnsResolver> dns;
    if (!options.no_dns) {
        try {
            dns = std::make_unique<enrich::DnsResolver>();
        } catch (const Error& e) {
            notes.push_back(std::string(e.what()) + ": names stay empty");
        }
    }
    for (const auto& n : notes) std::fprintf(stderr, "flowtop: note: %s\n", n.c_str());
    return std::make_unique<enrich::Enricher>(std::move(services), std::move(geo), std::move(dns),
                                              enrich::EnricherConfig{.label_special = !options.no_geoip});
}

// One namespace (flowtop's own, or --netns): one guard, one conntrack source, one attributor.
struct SingleNamespace {
    std::unique_ptr<flowtop::SysctlGuard> guard;
    std::unique_ptr<flowtop::ct::ConntrackIo> io;
    std::unique_ptr<flowtop::enrich::ProcAttributor> proc;
};

int run(flowtop::ui::Options options) {
    using namespace flowtop;
    if (!options.batch && !isatty(STDOUT_FILENO)) {
        options.batch = true;
        std::fprintf(stderr, "flowtop: stdout is not a terminal: writing batch output "
                             "(--batch silences this note)\n");
    }

    require_net_admin();
    if (!options.netns.empty()) enter_netns(options.netns);
    signals::install_handlers();

    table::SnapshotHub hub;
    table::CollectorConfig config{.interval = options.interval,
                                  .fixed_sweep_gap = options.full_sweep};
    SingleNamespace single;
    std::unique_ptr<netns::AllNetnsWatcher> watcher;
    std::unique_ptr<table::Collector> collector;
    if (options.all_netns) {
        // Fails here, with the clear message, when conntrack netlink is missing altogether.
        ct::open_kernel_conntrack({.subscribe_events = false});
        // Each namespace holds a few sockets and settings files open.
        raise_open_file_limit();
        watcher = std::make_unique<netns::AllNetnsWatcher>(
            netns::AllNetnsConfig{.attribute_processes = !options.no_proc});
        collector = std::make_unique<table::Collector>(hub, config);
        collector->set_source_watcher(watcher.get());
    } else {
        single.guard = std::make_unique<SysctlGuard>(ct::guarded_sysctls());
        for (const auto& w : single.guard->warnings())
            std::fprintf(stderr, "flowtop: warning: %s\n", w.c_str());
        single.io = ct::open_kernel_conntrack();
        config.acct_on = single.guard->is_on(ct::k_acct_sysctl);
        config.timestamp_on = single.guard->is_on(ct::k_timestamp_sysctl);
        collector = std::make_unique<table::Collector>(*single.io, hub, config);
        // Made after enter_netns: its worker thread inherits the watched namespace for
        // sock_diag, while /proc stays the host's mount.
        if (!options.no_proc) {
            try {
                single.proc = std::make_unique<enrich::ProcAttributor>();
                collector->add_hook(single.proc.get());
            } catch (const Error& e) {
                // Flows are still worth showing without their processes.
                std::fprintf(stderr, "flowtop: warning: no process attribution: %s\n", e.what());
            }
        }
    }
    auto enricher = make_enricher(options);
    collector->add_hook(enricher.get());
    std::exception_ptr writer_error;
    std::jthread writer([&](std::stop_token stop) {
        try {
            collector->run(stop);
        } catch (...) {
            writer_error = std::current_exception();
        }
        hub.close();
    });

    // Namespaces that could not be watched: those found at start now, later ones at the end
    // (the screen is flowtop's meanwhile).
    auto tell_watcher_notes = [&] {
        if (watcher)
            for (const auto& note : watcher->take_notes())
                std::fprintf(stderr, "flowtop: warning: %s\n", note.c_str());
    };
    auto first = hub.wait_newer(0, std::chrono::seconds(30));
    tell_watcher_notes();
    if (options.batch && first && first->stats.empty_at_start)
        std::fprintf(stderr,
                     "flowtop: note: the conntrack table is empty. The kernel tracks connections "
                     "in a network namespace only once a firewall rule uses conntrack (e.g. nft "
                     "'ct state') or NAT is set up.\n");

    int status = options.batch ? ui::run_batch(hub, options, stdout) : ui::run_top(hub, options);
    writer.request_stop();
    writer.join();
    if (single.guard) single.guard->restore();
    tell_watcher_notes();
    watcher.reset();  // puts back every watched namespace's settings
    if (writer_error) std::rethrow_exception(writer_error);
    signals::reraise_pending();
    return status;
}

}  // namespace

int main(int argc, char* argv[]) {
    using namespace flowtop;
    try {
        auto options = ui::parse_options(argc, argv);
        if (options.show_help) {
            std::fputs(ui::usage_text().c_str(), stdout);
            return 0;
        }
        if (options.show_version) {
            std::fputs(ui::version_text().c_str(), stdout);
            return 0;
        }
        return run(std::move(options));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "flowtop: %s\nTry 'flowtop --help' for more information.\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "flowtop: %s\n", e.what());
        return 1;
    }
}
