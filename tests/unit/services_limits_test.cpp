// conf files may be written by someone other than the root who reads flowtop's output.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "flowtop/enrich/services.hpp"

using namespace flowtop::enrich;

TEST(ServicesLimits, NulsEscapesAndOverlongNamesAreRefusedWithAShortWarning) {
    ServiceTable t;
    std::vector<std::string> warnings;
    const std::string text = std::string("80, ht\0tp\n", 10) + "81, \x1b[2Jpwn\n" + "82, " +
                             std::string(1 << 20, 'x') + "\n" + "83, " +
                             std::string(k_max_service_name, 'y') + "\n99999, big\n8x, bad\n84,\n";
    t.load_text(text, "tcp.conf", IPPROTO_TCP, warnings);
    ASSERT_EQ(warnings.size(), 6u);
    EXPECT_EQ(warnings[0],
              "tcp.conf:1: bad service name \"ht\\x00tp\" (one word of printable characters "
              "expected)");
    EXPECT_EQ(warnings[1],
              "tcp.conf:2: bad service name \"\\x1b[2Jpwn\" (one word of printable characters "
              "expected)");
    EXPECT_EQ(warnings[2], "tcp.conf:3: service name \"" + std::string(32, 'x') +
                               "...\" is longer than 32 characters");
    EXPECT_EQ(warnings[3], "tcp.conf:5: bad port \"99999\" (0-65535)");
    EXPECT_EQ(warnings[4], "tcp.conf:6: bad port \"8x\" (0-65535)");
    EXPECT_EQ(warnings[5], "tcp.conf:7: missing service name after \"84,\"");
    EXPECT_EQ(t.lookup(IPPROTO_TCP, 80), nullptr);
    EXPECT_EQ(t.lookup(IPPROTO_TCP, 82), nullptr);
    ASSERT_NE(t.lookup(IPPROTO_TCP, 83), nullptr);  // exactly the cap is fine
    for (const auto& w : warnings) EXPECT_LT(w.size(), 200u);
}
