#pragma once
// Batch --group country: one row per destination country (flows, bytes and rates both ways),
// answering "which countries are my connections going to?".
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"

namespace flowtop::ui {

struct CountryRow {
    std::string country;  // ISO code, "--" for special-purpose addresses, "" when unknown
    std::uint64_t flows = 0;
    std::uint64_t orig_bytes = 0;  // flows without counters add nothing
    std::uint64_t reply_bytes = 0;
    double orig_rate = 0;
    double reply_rate = 0;
};

// Busiest country first (rate, then bytes, then flows, then code).
std::vector<CountryRow> group_by_country(const table::Snapshot& snap,
                                         std::span<const table::FlowRow* const> rows);

// Writes one frame of country rows; csv_header: print the CSV header line first.
void write_country_frame(OutputFormat format, std::FILE* out, const table::Snapshot& snap,
                         const std::vector<CountryRow>& rows, bool bits, bool csv_header);

}  // namespace flowtop::ui
