// libFuzzer target: the flowtoprc parser (src/ui/config_file.cpp), and the save key's rewrite
// of a user's file. Whatever the text: every warning names the file and its line; the
// settings it leaves, written out with config_text, load back with no warning to the same
// settings (what the save key writes is always read back as written); and save_config over
// that text writes a file that loads back to the same settings too.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "flowtop/ui/config_file.hpp"
#include "flowtop/ui/options.hpp"

using namespace flowtop;

namespace {

void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "config_file_fuzz: %s\n%s\n", what, detail.c_str());
    std::abort();
}

// "fuzz.rc:" then a line number then ": ".
bool names_file_and_line(const std::string& w) {
    const std::string_view prefix = "fuzz.rc:";
    if (w.rfind(prefix, 0) != 0) return false;
    std::size_t i = prefix.size(), digits = 0;
    while (i < w.size() && w[i] >= '0' && w[i] <= '9') ++i, ++digits;
    return digits > 0 && w.compare(i, 2, ": ") == 0;
}

// One private file for the save round trip, made once (tmpfs when /dev/shm exists).
const std::string& scratch_path() {
    static const std::string path = [] {
        std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string tmpl = dir + "/flowtoprc-fuzz-XXXXXX";
        if (!mkdtemp(tmpl.data())) fail("mkdtemp", tmpl);
        return tmpl + "/flowtoprc";
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > (1 << 16)) return -1;  // lines are read whole; longer adds nothing but time
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    ui::Options o;
    std::vector<std::string> warnings;
    ui::apply_config_text(text, "fuzz.rc", o, warnings);
    for (const auto& w : warnings)
        if (!names_file_and_line(w)) fail("a warning without file:line", w);

    const std::string written = ui::config_text(o);
    ui::Options back;
    std::vector<std::string> back_warnings;
    ui::apply_config_text(written, "saved.rc", back, back_warnings);
    if (!back_warnings.empty()) fail("config_text does not load back cleanly", back_warnings[0]);
    if (ui::config_text(back) != written) fail("config_text does not load back the same", written);

    // The save key over the user's own text: comments and unknown lines kept, values replaced.
    const std::string& path = scratch_path();
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(text.data(), static_cast<long>(size));
    ui::save_config(path, o);
    std::ifstream in(path, std::ios::binary);
    std::stringstream saved;
    saved << in.rdbuf();
    ui::Options reloaded;
    std::vector<std::string> ignored;  // the user's bad lines stay, and still warn
    ui::apply_config_text(saved.str(), "fuzz.rc", reloaded, ignored);
    if (ui::config_text(reloaded) != written)
        fail("a saved file loads back different", saved.str());
    return 0;
}
