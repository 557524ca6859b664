// libFuzzer target: the mmdb open and lookup path on whatever bytes a file holds (a GeoIP file
// is written by others: a download, a package, a user). The bytes go to a temporary file,
// GeoIp opens it as flowtop does (a bad file is a note, never a crash) and looks up addresses
// of both families. Seeds are valid files from tests/unit/mmdb_writer (mmdb_seeds).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "flowtop/enrich/geoip.hpp"

using namespace flowtop;

namespace {

void fail(const char* what) {
    std::fprintf(stderr, "mmdb_fuzz: %s\n", what);
    std::abort();
}

// One private directory for the run, removed at exit.
struct TempFile {
    std::string dir;
    std::string path;
    TempFile() {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / "flowtop-mmdb-fuzz-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) fail("mkdtemp");
        dir = tmpl;
        path = dir + "/fuzz.mmdb";
    }
    ~TempFile() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void write(const std::uint8_t* data, std::size_t size) const {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) fail("cannot write the temporary file");
        for (std::size_t done = 0; done < size;) {
            auto n = ::write(fd, data + done, size - done);
            if (n <= 0) fail("short write to the temporary file");
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
};

const std::vector<std::pair<Addr, Family>>& addresses() {
    static const auto list = [] {
        std::vector<std::pair<Addr, Family>> out;
        for (const char* text : {"198.51.100.7", "192.0.2.1", "203.0.113.255", "0.0.0.1",
                                 "2001:db8:1::5", "2001:db8::1", "::ffff:198.51.100.7", "ff02::1"})
            out.push_back(*parse_addr(text));
        return out;
    }();
    return list;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const TempFile file;
    file.write(data, size);
    std::vector<std::string> notes;
    auto geo = enrich::GeoIp::open({file.path}, notes);
    if (geo.empty() == notes.empty()) fail("a file neither opened nor noted");
    for (const auto& [addr, family] : addresses()) {
        auto result = geo.lookup(addr, family);
        if (result.country.size() > size || result.city.size() > size || result.org.size() > size)
            if (!enrich::special_label(addr, family)) fail("a string longer than the file");
        for (const auto& db : geo.databases()) {
            enrich::GeoResult direct;
            (void)db.lookup(addr, family, direct);
        }
    }
    return 0;
}
