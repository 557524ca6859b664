#pragma once
// Batch output, one frame at a time: an aligned text table for people, JSON lines and CSV for
// scripts. The same rows go to each; only the formatting differs.
#include <cstdio>
#include <memory>
#include <span>

#include "flowtop/table/snapshot.hpp"
#include "flowtop/ui/options.hpp"

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

// JSON string escaping (RFC 8259), exposed for tests.
std::string json_escape(std::string_view s);

}  // namespace flowtop::ui
