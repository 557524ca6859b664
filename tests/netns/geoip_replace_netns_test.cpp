// A running flowtop whose GeoIP file is truncated in place (as `cp` does before it writes) and
// then replaced by rename (as geoipupdate does): it goes on, says what happened, and flows
// that come after the rename get the new file's answers.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "harness.hpp"
#include "mmdb_writer.hpp"

using namespace flowtop::test;
namespace fs = std::filesystem;

namespace {

std::string write_country_db(const std::string& path, const char* country) {
    MmdbWriter w("GeoLite2-Country");
    w.insert(
        "198.51.100.0/24",
        MmdbValue::map({{"country", MmdbValue::map({{"iso_code", MmdbValue::str(country)}})}}));
    return w.write(path);
}

// The country flowtop shows for the flow to `port`, waiting up to a few frames for it.
std::string country_of_flow(Flowtop& ft, int port) {
    for (int i = 0; i < 15; ++i) {
        auto frame = ft.next_frame();
        if (!frame) return "(no frame)";
        for (const auto& f : frame->find("tcp", port))
            if (f["dst_country"].is_string()) return f["dst_country"];
    }
    return "(none)";
}

bool wait_for_stderr(Flowtop& ft, const std::string& text) {
    for (int i = 0; i < 30; ++i) {
        if (ft.stderr_text().find(text) != std::string::npos) return true;
        if (!ft.next_frame(1s)) return false;
    }
    return false;
}

}  // namespace

TEST(GeoIpReplacedWhileRunning, TruncatedInPlaceThenRenamedOver) {
    TestNet net;
    net.a.set_sysctl("net.netfilter.nf_conntrack_acct", "0");
    std::string tmpl = (fs::temp_directory_path() / "flowtop-georun-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    const std::string dir = tmpl;
    const std::string db = write_country_db(dir + "/country.mmdb", "NL");

    Flowtop ft(net.a, {"-o", "json", "-c", "1000", "-t", "0.3", "-n", "--geoip-db", db});
    TcpTransfer first(net, false, 7101, 1000, 1000);
    EXPECT_EQ(country_of_flow(ft, 7101), "NL") << ft.stderr_text();

    fs::resize_file(db, 0);
    EXPECT_TRUE(wait_for_stderr(ft, "flowtop: warning: GeoIP database " + db +
                                        " is empty: it "
                                        "changed while flowtop ran; lookups from it stop until it "
                                        "is valid again"))
        << ft.stderr_text();
    ASSERT_TRUE(ft.next_frame()) << "flowtop stopped after the truncation: " << ft.stderr_text();

    write_country_db(dir + "/country.mmdb.new", "SE");
    ASSERT_EQ(std::rename((dir + "/country.mmdb.new").c_str(), db.c_str()), 0);
    EXPECT_TRUE(wait_for_stderr(
        ft, "flowtop: warning: GeoIP database " + db + " changed on disk: reopened"))
        << ft.stderr_text();
    TcpTransfer second(net, false, 7102, 1000, 1000);
    EXPECT_EQ(country_of_flow(ft, 7102), "SE") << ft.stderr_text();

    ft.signal(SIGTERM);
    const int status = ft.wait();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
    EXPECT_EQ(ft.stderr_text().find("Bus error"), std::string::npos);
    EXPECT_EQ(net.a.sysctl("net.netfilter.nf_conntrack_acct"), "0");
    std::error_code ec;
    fs::remove_all(dir, ec);
}
