#include "flowtop/util/string_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using flowtop::StringPool;

TEST(StringPool, InternsOnceAndZeroIsUnknown) {
    StringPool p;
    EXPECT_EQ(p.get(flowtop::k_no_string), "");
    auto a = p.intern("example.net");
    auto b = p.intern("example.net");
    EXPECT_EQ(a, b);
    EXPECT_NE(a, flowtop::k_no_string);
    EXPECT_EQ(p.get(a), "example.net");
    EXPECT_EQ(p.get(999999), "");  // never handed out: empty, not a crash
}

TEST(StringPool, ReadersSeeStableStringsWhileTheWriterAppends) {
    StringPool p;
    std::atomic<bool> done{false};
    std::atomic<int> bad{0};
    std::jthread reader([&] {
        while (!done) {
            auto n = p.size();
            for (std::size_t id = 1; id < n; id += 97)
                if (p.get(static_cast<flowtop::StrId>(id)) != "s" + std::to_string(id)) ++bad;
        }
    });
    for (int i = 1; i < 20000; ++i) p.intern("s" + std::to_string(i));
    done = true;
    reader.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(p.size(), 20000u);
}
