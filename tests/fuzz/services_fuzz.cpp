// libFuzzer target: the services conf parser (conf/tcp.conf, conf/udp.conf "port, name").
// Whatever the text, every name it keeps is one non-empty word and every line it drops is
// named in a warning with its file and line.
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>
#include <vector>

#include "flowtop/enrich/services.hpp"

using namespace flowtop;

namespace {

void fail(const char* what) {
    std::fprintf(stderr, "services_fuzz: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    enrich::ServiceTable table;
    std::vector<std::string> warnings;
    table.load_text(text, "fuzz.conf", IPPROTO_TCP, warnings);
    table.load_text(text, "fuzz.conf", IPPROTO_UDP, warnings);
    for (const auto& w : warnings)
        if (w.rfind("fuzz.conf:", 0) != 0) fail("a warning without file and line");

    // Every kept port is a run of digits in the text: look those up (all 65536 ports per input
    // would make the target a hundred times slower).
    std::set<unsigned> ports;
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] < '0' || text[i] > '9') {
            ++i;
            continue;
        }
        unsigned value = 0;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
            value = value > 65535 ? value : value * 10 + static_cast<unsigned>(text[i] - '0');
        if (value <= 65535) ports.insert(value);
    }
    std::size_t named = 0;
    for (std::uint8_t proto : {std::uint8_t{IPPROTO_TCP}, std::uint8_t{IPPROTO_UDP}}) {
        for (unsigned port : ports) {
            const std::string* name = table.lookup(proto, static_cast<std::uint16_t>(port));
            if (!name) continue;
            ++named;
            if (name->empty() || name->find_first_of(" \t,\n#") != std::string::npos)
                fail("a service name that is not one word");
        }
    }
    if (named != table.size()) fail("size() differs from the names found");
    return 0;
}
