#include "flowtop/table/tick.hpp"

#include <algorithm>
#include <cmath>

#include "flowtop/table/flow_table.hpp"

namespace flowtop::table {

const FlowRow* TickContext::find(ct::FlowKey key) const noexcept { return table_.find(key); }

bool TickContext::write_enrichment(ct::FlowKey key, const FlowEnrichment& value) {
    return table_.set_enrichment(key, value);
}

void TickHooks::run(FlowTable& table, StringPool& strings, std::uint64_t now_ns,
                    std::chrono::milliseconds interval) {
    const TickChanges changes = table.tick(now_ns);
    for (auto& entry : hooks_) {
        pass_.clear();
        const auto period = entry.hook->full_pass_period();
        if (period.count() > 0 && table.size() > 0) {
            // A slice big enough that every row comes up once per period, at the least one row.
            const double share = std::min(
                1.0, static_cast<double>(interval.count()) / static_cast<double>(period.count()));
            const auto n = std::max<std::size_t>(
                1, static_cast<std::size_t>(std::ceil(share * static_cast<double>(table.size()))));
            if (entry.cursor >= table.size()) entry.cursor = 0;
            table.keys_in(entry.cursor, n, pass_);
            entry.cursor += n;
        }
        TickContext context(table, strings, changes, now_ns, pass_);
        entry.hook->on_tick(context);
    }
}

void tick_with(TickHook& hook, FlowTable& table, StringPool& strings, std::uint64_t now_ns,
               std::chrono::milliseconds interval) {
    TickHooks hooks;
    hooks.add(&hook);
    hooks.run(table, strings, now_ns, interval);
}

}  // namespace flowtop::table
