// --no-proc: parsed, off by default, documented in --help.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "flowtop/ui/options.hpp"

namespace {
flowtop::ui::Options parse_args(std::vector<std::string> args) {
    args.insert(args.begin(), "flowtop");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return flowtop::ui::parse_options(static_cast<int>(args.size()), argv.data());
}
}  // namespace

TEST(ProcOptions, AttributionIsOnUnlessNoProcIsGiven) {
    EXPECT_FALSE(parse_args({}).no_proc);
    auto o = parse_args({"--no-proc", "-n"});
    EXPECT_TRUE(o.no_proc);
    EXPECT_TRUE(o.no_dns);
}

TEST(ProcOptions, HelpMentionsNoProc) {
    EXPECT_NE(flowtop::ui::usage_text().find("--no-proc"), std::string::npos);
}
