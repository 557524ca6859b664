// What the package ships beside the binary agrees with the binary: the example flowtoprc
// holds only keys flowtop knows (commented out: the defaults), and the completions offer
// exactly flowtop's sort columns and output formats.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "flowtop/ui/config_file.hpp"
#include "flowtop/ui/view_model.hpp"

using namespace flowtop::ui;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::set<std::string> words(const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string w; in >> w;) out.insert(w);
    return out;
}

std::set<std::string> sort_names() {
    std::set<std::string> out;
    for (auto key : sort_keys()) out.insert(sort_key_name(key));
    return out;
}

const std::string k_root = FLOWTOP_SOURCE_DIR;

}  // namespace

TEST(Packaging, ExampleFlowtoprcIsTheDefaultsAndEveryKeyIsKnown) {
    const auto text = slurp(k_root + "/packaging/flowtoprc");
    Options o;
    std::vector<std::string> warnings;
    apply_config_text(text, "flowtoprc", o, warnings);
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_EQ(config_text(o), config_text(Options{}));

    // Every "#key = value" line uncommented: each key is known and each value valid.
    const std::string uncommented =
        std::regex_replace(text, std::regex(R"((^|\n)#([a-z_]+ =))"), "$1$2");
    ASSERT_NE(uncommented, text);
    Options all;
    apply_config_text(uncommented, "flowtoprc", all, warnings);
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_EQ(all.filter, "not port:22");
    // And the example names every key flowtop has.
    std::istringstream keys(config_text(Options{}));
    for (std::string line; std::getline(keys, line);) {
        const auto key = line.substr(0, line.find(' '));
        EXPECT_NE(text.find("\n#" + key + " ="), std::string::npos) << key;
    }
}

TEST(Packaging, CompletionsOfferFlowtopsSortColumnsAndFormats) {
    const auto bash = slurp(k_root + "/packaging/completions/flowtop.bash");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(bash, m, std::regex(R"re(_flowtop_sort_columns="([^"]*)")re")));
    EXPECT_EQ(words(m[1]), sort_names());
    ASSERT_TRUE(std::regex_search(bash, m, std::regex(R"re(_flowtop_formats="([^"]*)")re")));
    EXPECT_EQ(words(m[1]), (std::set<std::string>{"table", "json", "csv"}));

    const auto zsh = slurp(k_root + "/packaging/completions/_flowtop");
    ASSERT_TRUE(std::regex_search(zsh, m, std::regex(R"(--sort=\[[^\]]*\]:column:\(([^)]*)\))")));
    EXPECT_EQ(words(m[1]), sort_names());
    ASSERT_TRUE(std::regex_search(zsh, m, std::regex(R"(:format:\(([^)]*)\))")));
    EXPECT_EQ(words(m[1]), (std::set<std::string>{"table", "json", "csv"}));
}

TEST(Packaging, CompletionsKnowEveryLongOption) {
    const auto bash = slurp(k_root + "/packaging/completions/flowtop.bash");
    const auto zsh = slurp(k_root + "/packaging/completions/_flowtop");
    std::smatch m;
    const std::string help = usage_text();
    std::regex long_opt(R"(--[a-z][a-z0-9-]+)");
    for (auto it = std::sregex_iterator(help.begin(), help.end(), long_opt);
         it != std::sregex_iterator(); ++it) {
        const std::string opt = it->str();
        EXPECT_TRUE(std::regex_search(bash, std::regex(opt + R"((\s|'))"))) << opt << " in bash";
        EXPECT_NE(zsh.find(opt), std::string::npos) << opt << " in zsh";
    }
}
