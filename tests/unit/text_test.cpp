#include "flowtop/util/text.hpp"

#include <gtest/gtest.h>

#include <string>

#include "flowtop/util/string_pool.hpp"

using namespace flowtop;

TEST(Text, PrintableTextAndUtf8StayAsTheyAre) {
    for (const char* s :
         {"", "nginx", "Zürich", "東京", "a-b_c.d:1/2 [x]", "emoji \xF0\x9F\x98\x80"}) {
        EXPECT_TRUE(is_clean(s)) << s;
        EXPECT_EQ(sanitize(s), s);
    }
}

TEST(Text, ControlCharactersBecomeVisibleEscapes) {
    EXPECT_EQ(sanitize("\x1b[2J\x1b]0;PWN\x07"), "\\x1b[2J\\x1b]0;PWN\\x07");
    EXPECT_EQ(sanitize(std::string("a\0b", 3)), "a\\x00b");
    EXPECT_EQ(sanitize("line\nnext\r\t\x7f"), "line\\x0anext\\x0d\\x09\\x7f");
    EXPECT_EQ(sanitize("csi \xC2\x9B"
                       "2J"),
              "csi \\u009b2J");  // 8-bit CSI (C1)
    EXPECT_EQ(sanitize("\xE2\x80\xAE"
                       "gpj.exe"),
              "\\u202egpj.exe");                             // right-to-left override
    EXPECT_EQ(sanitize("bad \xFF\xC3"), "bad \\xff\\xc3");   // not UTF-8
    EXPECT_EQ(sanitize("\xC0\xAF"), "\\xc0\\xaf");           // overlong '/'
    EXPECT_EQ(sanitize("\xED\xA0\x80"), "\\xed\\xa0\\x80");  // a surrogate
}

TEST(Text, SanitizingTwiceChangesNothingMore) {
    const std::string once = sanitize("\x1b[31m\xC2\x9B\xFF");
    EXPECT_TRUE(is_clean(once));
    EXPECT_EQ(sanitize(once), once);
}

TEST(Text, ReplaceUnsafeKeepsTheWidth) {
    EXPECT_EQ(replace_unsafe("\x1b[2Jok", '?'), "?[2Jok");
    EXPECT_EQ(replace_unsafe("Zürich\x07", '?'), "Zürich?");
}

TEST(Text, CapsCutAtACharacterBoundary) {
    EXPECT_EQ(cap_utf8("Zürich", 2), "Z");
    EXPECT_EQ(cap_utf8("Zürich", 3), "Zü");
    EXPECT_EQ(cap_utf8("abc", 10), "abc");
    EXPECT_EQ(quote_input(std::string(1 << 20, 'x'), 80), std::string(80, 'x') + "...");
    EXPECT_EQ(quote_input("\x1b"), "\\x1b");
}

TEST(Text, TheStringPoolStoresOnlySanitizedText) {
    StringPool pool;
    const StrId id = pool.intern("\x1b]0;PWN\x07");
    EXPECT_EQ(pool.get(id), "\\x1b]0;PWN\\x07");
    EXPECT_EQ(pool.intern("\\x1b]0;PWN\\x07"), id);  // the same shown text, the same id
    EXPECT_EQ(pool.get(pool.intern("plain")), "plain");
}

TEST(Text, TrimBlanksTakesSpacesTabsAndACrOffBothEnds) {
    EXPECT_EQ(flowtop::trim_blanks(" \t80, http\r"), "80, http");
    EXPECT_EQ(flowtop::trim_blanks("a b"), "a b");
    EXPECT_EQ(flowtop::trim_blanks(" \t\r "), "");
    EXPECT_EQ(flowtop::trim_blanks("\nx"), "\nx");  // a newline is not a blank here
}
