// flowtoprc as a user meets it: the built binary in a test namespace, real flows, the user's
// file found through XDG_CONFIG_HOME, the command line over it, and warnings naming file:line.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <sstream>

#include "harness.hpp"

using namespace flowtop::test;

TEST(Config, UserFileThenCommandLineAndWarningsNameFileAndLine) {
    TestNet net;
    char tmpl[] = "/tmp/ftconfig-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    struct RemoveDir {
        std::string dir;
        ~RemoveDir() { sh("rm -rf " + dir); }
    } remove_dir{dir};
    const std::string rc = dir + "/flowtop/flowtoprc";
    must("mkdir -p " + dir +
         "/flowtop && printf 'interval = 0.3\\nnot a setting\\n"
         "filter = port:7501\\nsort = planet\\n' > " +
         rc);
    TcpTransfer to_7501(net, false, 7501, 1000, 1000);
    TcpTransfer to_7502(net, false, 7502, 1000, 1000);

    std::string out;
    // SUDO_USER would point the file at that user's home: out of the way, as XDG is the subject.
    const int rc_status =
        sh(net.a.exec("env -u SUDO_USER XDG_CONFIG_HOME=" + dir + " " + FLOWTOP_BINARY +
                      " -o json -c 2 --filter port:7502 2>" + dir + "/err"),
           &out);
    ASSERT_EQ(rc_status, 0) << out;
    std::string err = must("cat " + dir + "/err");
    EXPECT_NE(err.find("warning: " + rc + ":2: expected \"key = value\""), std::string::npos)
        << err;
    EXPECT_NE(err.find("warning: " + rc + ":4: sort: unknown sort column 'planet'"),
              std::string::npos)
        << err;

    std::vector<Json> frames, flows;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        auto j = Json::parse(line);
        (j["type"] == "frame" ? frames : flows).push_back(j);
    }
    ASSERT_EQ(frames.size(), 2u) << out;
    // The file's interval (no -t given), the command line's filter over the file's.
    EXPECT_NEAR(frames[1]["interval_s"].get<double>(), 0.3, 0.15) << frames[1];
    bool saw_7502 = false;
    for (const auto& f : flows) {
        EXPECT_NE(f["dport"], 7501) << f;
        saw_7502 |= f["dport"] == 7502;
    }
    EXPECT_TRUE(saw_7502) << out;
}
