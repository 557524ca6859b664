#pragma once
// The columns flows can be sorted by, named as --sort and the UI name them.
#include <optional>
#include <string_view>
#include <vector>

namespace flowtop::ui {

enum class SortKey {
    rate,
    orig_rate,
    reply_rate,
    bytes,
    orig_bytes,
    reply_bytes,
    age,
    proto,
    state,
    src,
    dst,
    dport,
    process,
    country,
    flows
};
// The sortable columns in the order `<` and `>` walk through them.
const std::vector<SortKey>& sort_keys();
const char* sort_key_name(SortKey key);
std::optional<SortKey> parse_sort_key(std::string_view name);

}  // namespace flowtop::ui
