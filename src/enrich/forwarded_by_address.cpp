#include "flowtop/enrich/forwarded_by_address.hpp"

namespace flowtop::enrich {

void ForwardedByAddress::on_tick(table::TickContext& tick) {
    for (const auto key : tick.changes().created) {
        const table::FlowRow* row = tick.find(key);
        if (!row || row->forwarded_known) continue;
        const auto& ct = row->ct;
        const bool forwarded = local_.ends(ct.family, ct.orig.src, ct.reply.src).forwarded();
        tick.enrich(key, [&](table::FlowEnrichment& r) {
            r.forwarded = forwarded;
            r.forwarded_known = true;
        });
    }
}

}  // namespace flowtop::enrich
