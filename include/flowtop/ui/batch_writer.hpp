#pragma once
// Batch output, one frame at a time: an aligned text table for people, JSON lines and CSV for
// scripts. The same rows go to each; only the formatting differs.
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/flow_fields.hpp"
#include "flowtop/ui/options.hpp"
#include "flowtop/util/text.hpp"

namespace flowtop::ui {

class BatchWriter {
  public:
    virtual ~BatchWriter() = default;
    // rows: the flows to print, already filtered and ordered.
    virtual void write_frame(const table::Snapshot& snap,
                             std::span<const table::FlowRow* const> rows) = 0;
};

struct WriterConfig {
    bool bits = false;
    bool show_source = true;
};

std::unique_ptr<BatchWriter> make_batch_writer(OutputFormat format, std::FILE* out,
                                               WriterConfig config);

// One flow as the JSON object of a batch line (no newline): {"type":"flow", the keys of
// flow_field_keys()..., then `extra` (more ",\"key\":value" members, e.g. the flow log's end).
std::string flow_json(const table::Snapshot& snap, const table::FlowRow& row,
                      std::string_view extra, std::vector<Field>& scratch);

// JSON string escaping lives in util (text.hpp).
using flowtop::json_escape;

}  // namespace flowtop::ui
