#pragma once
// Alerts as text: one JSON object a line (batch output, --alert-exec's stdin), a CSV row and
// a line for people. The same keys everywhere; strings from the network are escaped.
#include <string>

#include "flowtop/table/alert.hpp"

namespace flowtop::detect {

// {"type":"alert","id":..,"state":"new"|"update",...} without a trailing newline.
std::string alert_json(const table::Alert& alert, bool is_new);
// Column names of alert_csv, comma-separated.
const char* alert_csv_header();
std::string alert_csv(const table::Alert& alert, bool is_new);
// "ALERT #3 high syn_flood 12:00:01: 60 sources sent ..."
std::string alert_line(const table::Alert& alert, bool is_new);

}  // namespace flowtop::detect
