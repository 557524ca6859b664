// Writes valid mmdb files (both schemas the lookup reads, IPv4 and IPv6 networks) as the seed
// corpus of mmdb_fuzz: random bytes would almost never reach the data section.
//   mmdb_seeds DIR
#include <cstdio>
#include <exception>

#include "mmdb_writer.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: mmdb_seeds DIR\n");
        return 2;
    }
    try {
        flowtop::test::write_maxmind_fixtures(argv[1]);
        flowtop::test::write_dbip_fixtures(argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mmdb_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
