#pragma once
// Append-only strings shared by the writer and every reader. Rows hold 32-bit ids, so rows stay
// small and memcpy-copyable. Storage lives in fixed chunks that never move: a reader may look up
// any id it found in a published snapshot while the writer keeps appending (the snapshot's
// release/acquire publication orders the chunk write before the read).
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace flowtop {

using StrId = std::uint32_t;
constexpr StrId k_no_string = 0;  // "unknown": shown as null / pending

class StringPool {
  public:
    StringPool();
    // Writer side: the id of `s`, adding it on first use. Not thread-safe against other writers.
    StrId intern(std::string_view s);
    // Reader side: any id obtained from a published snapshot.
    std::string_view get(StrId id) const noexcept;
    std::size_t size() const noexcept { return count_.load(std::memory_order_acquire); }

  private:
    static constexpr std::size_t k_chunk_bits = 12;
    static constexpr std::size_t k_chunk_size = std::size_t{1} << k_chunk_bits;
    static constexpr std::size_t k_max_chunks = 4096;  // 16M distinct strings
    std::array<std::atomic<std::string*>, k_max_chunks> chunks_{};
    std::array<std::unique_ptr<std::string[]>, k_max_chunks> owners_;
    std::atomic<std::size_t> count_{0};
    std::unordered_map<std::string_view, StrId> index_;
};

}  // namespace flowtop
