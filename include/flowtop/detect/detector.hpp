#pragma once
// The detectors: a tick hook on the writer thread that looks only at the flows that changed
// this tick (and a slow rolling pass for flow age), keeps bounded sliding-window state, folds
// repeats into alerts and hands the collector an immutable alert log for every frame. Flows
// that are evidence of an alert carry its id in FlowEnrichment::alert.
#include <chrono>
#include <cstdint>
#include <memory>

#include "flowtop/detect/config.hpp"
#include "flowtop/detect/local_net.hpp"
#include "flowtop/table/alert.hpp"
#include "flowtop/table/tick.hpp"

namespace flowtop::detect {

struct DetectorEnv {
    // Process attribution runs before the detectors: a new service waits a few ticks for the
    // owner of its socket before it alerts without one.
    bool attribution = false;
    // GeoIP runs before the detectors: a flow whose country is still pending is looked at
    // again on the next ticks.
    bool geoip = false;
};

class Detectors final : public table::TickHook, public table::AlertSource {
  public:
    Detectors(DetectConfig config, std::unique_ptr<LocalNet> local, DetectorEnv env = {});
    ~Detectors() override;
    Detectors(const Detectors&) = delete;
    Detectors& operator=(const Detectors&) = delete;

    void on_tick(table::TickContext& tick) override;
    std::chrono::milliseconds full_pass_period() const noexcept override;
    std::shared_ptr<const table::AlertLog> alert_log() const override;

    // The settings in force. Writer thread only (on_tick's), or before the writer starts.
    const DetectConfig& config() const noexcept;
    // Any thread (SIGHUP's reload): the next tick takes `config` on. Thresholds, windows,
    // allow-lists and caps change in place; the state tracked so far is kept (a lowered cap
    // evicts as new entries come), and a detector turned off stops looking at flows.
    void reconfigure(DetectConfig config);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowtop::detect
