// flowtop: options and wiring only; everything a test would want lives in the libraries.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <thread>

#include "flowtop/detect/alert_exec.hpp"
#include "flowtop/detect/detector.hpp"
#include "flowtop/enrich/enricher.hpp"
#include "flowtop/enrich/forwarded_by_address.hpp"
#include "flowtop/enrich/proc_attributor.hpp"
#include "flowtop/export/flow_log.hpp"
#include "flowtop/export/ipfix.hpp"
#include "flowtop/export/prometheus.hpp"
#include "flowtop/netns/watch.hpp"
#include "flowtop/table/collector.hpp"
#include "flowtop/ui/batch_runner.hpp"
#include "flowtop/ui/batch_writer.hpp"
#include "flowtop/ui/client_groups.hpp"
#include "flowtop/ui/config_file.hpp"
#include "flowtop/ui/flow_delete.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/options.hpp"
#include "flowtop/ui/top_view.hpp"
#include "flowtop/util/error.hpp"
#include "flowtop/util/guardian.hpp"
#include "flowtop/util/privileges.hpp"
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
    return std::make_unique<enrich::Enricher>(
        std::move(services), std::move(geo), std::move(dns),
        enrich::EnricherConfig{.label_special = !options.no_geoip, .notes_at_once = options.batch});
}

// The attributor is one for every watched namespace; each NamespaceSource opens its sockets.
std::unique_ptr<flowtop::enrich::ProcAttributor> make_attributor(
    const flowtop::ui::Options& options) {
    if (options.no_proc) return nullptr;
    try {
        return std::make_unique<flowtop::enrich::ProcAttributor>();
    } catch (const flowtop::Error& e) {
        // Flows are still worth showing without their processes.
        std::fprintf(stderr, "flowtop: warning: no process attribution: %s\n", e.what());
        return nullptr;
    }
}

// One namespace: its settings are read again every tick, so the header and the JSON tell the
// truth when someone turns one off under flowtop.
struct SettingsCheck final : flowtop::table::TickHook {
    SettingsCheck(flowtop::SysctlGuard& g, flowtop::table::Collector& c, bool tell)
        : guard(g), collector(c), tell_now(tell) {}
    void on_tick(flowtop::table::TickContext&) override {
        using namespace flowtop;
        if (guard.check())
            collector.set_kernel_settings(guard.is_on(ct::k_acct_sysctl),
                                          guard.is_on(ct::k_timestamp_sysctl));
        if (tell_now)  // batch: at once; the live view's screen is its own until the end
            for (const auto& n : guard.take_notes())
                std::fprintf(stderr, "flowtop: warning: %s\n", n.c_str());
    }
    flowtop::SysctlGuard& guard;
    flowtop::table::Collector& collector;
    bool tell_now;
};

// The exporters of README "Fleet". Made before entering a watched namespace, so their sockets
// live in flowtop's own one (reachable where flowtop was started).
struct Exporters {
    std::unique_ptr<flowtop::exporters::PrometheusExporter> prometheus;
    std::unique_ptr<flowtop::exporters::IpfixExporter> ipfix;
    std::unique_ptr<flowtop::exporters::FlowLog> log;
};

Exporters make_exporters(const flowtop::ui::Options& options,
                         const flowtop::table::SnapshotHub& hub) {
    using namespace flowtop;
    Exporters e;
    if (!options.ipfix.empty())
        e.ipfix = std::make_unique<exporters::IpfixExporter>(exporters::IpfixConfig{
            .target = options.ipfix, .active_timeout = options.ipfix_active_timeout});
    if (!options.log_file.empty()) {
        auto format = [scratch = std::vector<ui::Field>()](const table::Snapshot& frame,
                                                           const table::FlowRow& row) mutable {
            const std::string extra = ",\"end\":\"" + ui::rfc3339(frame.stats.time_ns) + '"';
            return ui::flow_json(frame, row, extra, scratch);
        };
        e.log = std::make_unique<exporters::FlowLog>(
            hub,
            exporters::FlowLogConfig{.path = options.log_file,
                                     .rotate_size = options.log_rotate_size,
                                     .rotate_count = options.log_rotate_count},
            format);
        // The live view owns the terminal: its notes wait for the end (see run()).
        if (options.daemon || options.batch)
            e.log->set_note_sink([](const std::string& note) {
                std::fprintf(stderr, "flowtop: warning: %s\n", note.c_str());
            });
    }
    if (!options.prometheus.empty()) {
        e.prometheus = std::make_unique<exporters::PrometheusExporter>(
            hub, exporters::PrometheusConfig{.listen = options.prometheus,
                                             .netns_label = options.all_netns});
        if (auto* ipfix = e.ipfix.get())
            e.prometheus->add_metrics([ipfix](std::string& out) {
                const auto& c = ipfix->counters();
                out +=
                    "# HELP flowtop_ipfix_records_total IPFIX data records sent.\n"
                    "# TYPE flowtop_ipfix_records_total counter\n"
                    "flowtop_ipfix_records_total " +
                    std::to_string(c.records.load()) +
                    "\n# HELP flowtop_ipfix_lost_records_total IPFIX records not sent (queue "
                    "full or send failed).\n# TYPE flowtop_ipfix_lost_records_total counter\n"
                    "flowtop_ipfix_lost_records_total " +
                    std::to_string(c.lost.load()) + '\n';
            });
        if (auto* log = e.log.get())
            e.prometheus->add_metrics([log](std::string& out) {
                const auto& c = log->counters();
                out +=
                    "# HELP flowtop_log_lines_total Flow log lines written.\n"
                    "# TYPE flowtop_log_lines_total counter\nflowtop_log_lines_total " +
                    std::to_string(c.lines.load()) +
                    "\n# HELP flowtop_log_dropped_total Flow log lines lost (queue full or "
                    "write failed).\n# TYPE flowtop_log_dropped_total counter\n"
                    "flowtop_log_dropped_total " +
                    std::to_string(c.dropped.load()) + '\n';
            });
    }
    return e;
}

// A service may start with stdin/stdout/stderr closed; keep 0-2 taken so no socket or log file
// ends up where a stray write to stdout would land.
void hold_standard_fds() {
    for (int fd = 0; fd <= 2; ++fd)
        if (fcntl(fd, F_GETFD) == -1) {
            const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (null_fd >= 0 && null_fd != fd) close(null_fd);
        }
}

// SIGHUP in --daemon mode: the config files read again with the same command line. A file
// with any error changes nothing (the settings in force stay, each error said with its
// file:line); else the detectors and the flow log take their new settings at their next tick,
// and a key that only a restart applies is named.
void reload_config(int argc, char* argv[], flowtop::ui::Options& running,
                   flowtop::detect::Detectors* detectors, Exporters& exporters) {
    using namespace flowtop;
    std::vector<std::string> errors;
    ui::Options next;
    try {
        next = ui::load_options(argc, argv, errors);
    } catch (const std::exception& e) {
        errors.emplace_back(e.what());
    }
    if (!errors.empty()) {
        std::fprintf(stderr, "flowtop: SIGHUP: config not reloaded, the settings in force stay:\n");
        for (const auto& e : errors) std::fprintf(stderr, "flowtop:   %s\n", e.c_str());
        return;
    }
    const auto reload = ui::compare_for_reload(running, next);
    if (reload.detect && detectors) {
        detectors->reconfigure(ui::detect_config(next));
        running.detect_settings = next.detect_settings;
    }
    if (reload.log && exporters.log) {
        exporters.log->reconfigure(next.log_file, next.log_rotate_size, next.log_rotate_count);
        running.log_file = next.log_file;
        running.log_rotate_size = next.log_rotate_size;
        running.log_rotate_count = next.log_rotate_count;
    }
    if (reload.changes.empty() && reload.restart.empty())
        std::fprintf(stderr, "flowtop: SIGHUP: config reloaded, no change\n");
    for (const auto& c : reload.changes)
        std::fprintf(stderr, "flowtop: SIGHUP: config reloaded: %s\n", c.c_str());
    for (const auto& c : reload.restart)
        std::fprintf(stderr, "flowtop: SIGHUP: not applied: %s\n", c.c_str());
}

// --daemon: nothing on stdout; waits for an exit signal (or the writer's end). SIGHUP reloads
// the config and reopens the flow log.
int run_daemon(const flowtop::table::SnapshotHub& hub, const std::function<void()>& on_hangup) {
    using namespace flowtop;
    for (;;) {
        pollfd p{signals::wakeup_fd(), POLLIN, 0};
        poll(&p, 1, 1000);
        if (p.revents & POLLIN) {
            char drain[64];
            while (read(signals::wakeup_fd(), drain, sizeof drain) > 0) {
            }
        }
        if (signals::pending_exit_signal() || hub.closed()) return 0;
        if (signals::take_hangups() > 0) on_hangup();
    }
}

int run(flowtop::ui::Options options, int argc, char* argv[]) {
    using namespace flowtop;
    if (options.daemon) hold_standard_fds();
    check_standard_streams();
    if (!options.daemon && !options.batch && !options.delete_matching && !isatty(STDOUT_FILENO)) {
        options.batch = true;
        std::fprintf(stderr,
                     "flowtop: stdout is not a terminal: writing batch output "
                     "(--batch silences this note)\n");
    }

    require_net_admin();
    // Made before entering --netns: the exporters' sockets stay where flowtop was started.
    table::SnapshotHub hub;
    Exporters exporters = make_exporters(options, hub);
    // Every socket and settings file flowtop opens from here on is the watched namespace's
    // (with --all-netns each NamespaceSource steps into its own), while /proc stays the host's.
    if (!options.netns.empty()) enter_netns(options.netns);
    // Deleting entries (K / F9, --delete-matching): a socket of the watched namespace, opened
    // while the privileges are all there. One namespace's only: with --all-netns the view says
    // it cannot.
    std::unique_ptr<ct::FlowDeleter> deleter;
    if (!options.all_netns && !options.daemon && (options.delete_matching || !options.batch)) {
        try {
            deleter = ct::open_flow_deleter();
        } catch (const Error&) {
            if (options.delete_matching) throw;  // the live view shows flows without it
        }
    }
    ui::DeleteFlow delete_flow;
    if (deleter)
        delete_flow = [d = deleter.get()](const ct::FlowRecord& f) { return d->remove(f); };
    signals::install_handlers();
    // Before any thread exists: the guardian is a fork of this process.
    if (std::string note; !guardian::start(note))
        std::fprintf(stderr, "flowtop: warning: %s\n", note.c_str());
    signals::block_exit_signals();  // every thread started from here on inherits the mask

    // Declared in the order they must outlive each other: the namespaces leave the collector
    // and the attributor before those go.
    auto proc = make_attributor(options);
    table::Collector collector(
        hub, {.interval = options.interval, .fixed_sweep_gap = options.full_sweep});
    netns::WatchConfig watch_config{.all_netns = options.all_netns, .users = {}};
    if (proc) watch_config.users.push_back(proc.get());
    netns::Watch watch(collector, std::move(watch_config));
    auto tell_notes = [&] {
        for (const auto& note : watch.take_notes())
            std::fprintf(stderr, "flowtop: warning: %s\n", note.c_str());
    };
    tell_notes();
    if (options.daemon) {
        std::string off;
        for (const auto& name : watch.settings_turned_on()) off += (off.empty() ? "" : ", ") + name;
        if (!off.empty())
            std::fprintf(stderr,
                         "flowtop: note: %s was off; flowtop turned it on until it exits, so "
                         "flows older than flowtop lack counters or times. A service should "
                         "rather set it to 1 in /etc/sysctl.d/ (see flowtop(8))\n",
                         off.c_str());
    }
    auto enricher = make_enricher(options);
    if (proc) collector.add_hook(proc.get());
    // --no-proc: forwarded from the addresses alone (in the watched namespace, entered above).
    std::unique_ptr<enrich::ForwardedByAddress> forwarded_by_address;
    if (!proc && !options.all_netns) {
        forwarded_by_address =
            std::make_unique<enrich::ForwardedByAddress>(LocalAddresses::of_current_namespace());
        collector.add_hook(forwarded_by_address.get());
    }
    collector.add_hook(enricher.get());
    // After attribution and enrichment: detectors read processes and countries. Made after
    // enter_netns, so "local" means the watched namespace's addresses; the LAN is the one the
    // Clients tab and the filter use (--lan, or the guessed networks and private ranges).
    std::unique_ptr<detect::Detectors> detectors;
    if (!options.no_detect) {
        detect::DetectConfig detect_config;
        for (const auto& a : options.detect_settings) detect::apply_setting(detect_config, a);
        detectors = std::make_unique<detect::Detectors>(
            detect_config, std::make_unique<detect::NamespaceLocalNet>(ui::lan_networks(options)),
            detect::DetectorEnv{.attribution = !options.no_proc, .geoip = !options.no_geoip});
        collector.add_hook(detectors.get());
        collector.set_alert_source(detectors.get());
    }
    if (!options.alert_exec.empty())
        detect::check_exec_path(options.alert_exec, options.alert_exec_shell);
    // After the enricher: the exporters see this tick's names, countries and processes.
    if (exporters.prometheus) {
        collector.add_hook(exporters.prometheus.get());
        exporters.prometheus->start();
    }
    if (exporters.ipfix) {
        collector.add_hook(exporters.ipfix.get());
        exporters.ipfix->start();
    }
    if (exporters.log) {
        collector.add_hook(exporters.log.get());
        exporters.log->start();
    }

    std::unique_ptr<SettingsCheck> settings_check;
    if (auto* guard = watch.own_guard()) {
        settings_check = std::make_unique<SettingsCheck>(*guard, collector, options.batch);
        collector.add_hook(settings_check.get());
    }
    // Set up: from here on only what the running loops use (privileges.hpp).
    privileges::drop_all_threads(privileges::kept_mask(
        {.process_attribution = !options.no_proc, .all_netns = options.all_netns}));
    std::exception_ptr writer_error;
    std::jthread writer = signals::crash_safe_thread([&](std::stop_token stop) {
        try {
            collector.run(stop);
        } catch (...) {
            writer_error = std::current_exception();
        }
        hub.close();
    });
    signals::unblock_exit_signals();  // the main loop takes them, through the self-pipe
    // After every guard is made: a guard installs the exit handlers again, SIGHUP's too.
    if (options.daemon) signals::set_hangup_reloads();

    // Namespaces that could not be watched: those found at start now, later ones at the end
    // (the screen is flowtop's meanwhile).
    std::unique_ptr<detect::AlertExec> alert_exec;
    if (!options.alert_exec.empty())
        alert_exec = std::make_unique<detect::AlertExec>(
            hub, detect::AlertExecConfig{.command = options.alert_exec,
                                         .shell = options.alert_exec_shell,
                                         .quiet = !options.batch,
                                         .report_failures = options.batch});
    // Only a fact of the first frame is kept, never the frame: a frame held for the whole run
    // pins the table as it was at start, so every chunk written since (a sweep's counters, the
    // attributor's fields) would stay in memory twice (738 B/flow at 240k flows).
    const bool empty_at_start = [&] {
        const auto first = hub.wait_newer(0, std::chrono::seconds(30));
        return first && first->stats.empty_at_start;
    }();
    tell_notes();
    if ((options.batch || options.daemon) && empty_at_start)
        std::fprintf(stderr,
                     "flowtop: note: the conntrack table is empty. The kernel tracks connections "
                     "in a network namespace only once a firewall rule uses conntrack (e.g. nft "
                     "'ct state') or NAT is set up.\n");

    ui::TopHooks hooks;
    if (enricher->has_dns())
        hooks.set_dns = [e = enricher.get()](bool on) { e->set_dns_paused(!on); };
    hooks.delete_flow = delete_flow;
    auto on_hangup = [&] {
        reload_config(argc, argv, options, detectors.get(), exporters);
        if (!exporters.log) return;
        std::fprintf(stderr, "flowtop: SIGHUP: reopening the flow log\n");
        exporters.log->reopen();
    };
    int status = options.delete_matching
                     ? ui::run_delete_matching(hub, options, delete_flow, stdout)
                 : options.daemon ? run_daemon(hub, on_hangup)
                 : options.batch  ? ui::run_batch(hub, options, stdout)
                                  : ui::run_top(hub, options, hooks);
    writer.request_stop();
    writer.join();
    if (alert_exec) {
        const auto st = alert_exec->stats();
        alert_exec.reset();
        if (st.runs || st.dropped)
            std::fprintf(stderr, "flowtop: --alert-exec: %llu run, %llu failed, %llu dropped\n",
                         static_cast<unsigned long long>(st.runs),
                         static_cast<unsigned long long>(st.failures),
                         static_cast<unsigned long long>(st.dropped));
    }
    if (exporters.log)
        for (const auto& note : exporters.log->take_notes())
            std::fprintf(stderr, "flowtop: warning: %s\n", note.c_str());
    tell_notes();
    watch.restore();  // every watched namespace's settings, before a signal is re-raised
    if (auto* guard = watch.own_guard())
        for (const auto& n : guard->take_notes())
            std::fprintf(stderr, "flowtop: warning: %s\n", n.c_str());
    tell_notes();
    for (const auto& note : enricher->take_notes())
        std::fprintf(stderr, "flowtop: warning: %s\n", note.c_str());
    remove_ledger_holders();
    guardian::finish();
    if (writer_error) std::rethrow_exception(writer_error);
    signals::reraise_pending();
    return status;
}

}  // namespace

int main(int argc, char* argv[]) {
    using namespace flowtop;
    cap_malloc_arenas();
    try {
        // Defaults, then /etc/flowtop/flowtoprc, the user's flowtoprc, the command line.
        std::vector<std::string> config_warnings;
        auto options = ui::load_options(argc, argv, config_warnings);
        if (!options.show_help && !options.show_version)
            for (const auto& w : config_warnings)
                std::fprintf(stderr, "flowtop: warning: %s\n", w.c_str());
        if (options.show_help) {
            std::fputs(ui::usage_text().c_str(), stdout);
            return 0;
        }
        if (options.show_detect_help) {
            std::fputs(detect::describe(detect::DetectConfig{}).c_str(), stdout);
            return 0;
        }
        if (options.show_version) {
            std::fputs(ui::version_text().c_str(), stdout);
            return 0;
        }
        return run(std::move(options), argc, argv);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "flowtop: %s\nTry 'flowtop --help' for more information.\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "flowtop: %s\n", e.what());
        return 1;
    }
}
