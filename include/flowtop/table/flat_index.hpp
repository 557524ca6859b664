#pragma once
// conntrack id -> row index, open addressing with linear probing: 8 bytes a slot at most 70%
// full, against ~50 bytes a flow for std::unordered_map's nodes and buckets.
#include <cstdint>
#include <vector>

namespace flowtop::table {

class FlatIndex {
  public:
    static constexpr std::uint32_t k_missing = 0xffffffffu;

    std::uint32_t find(std::uint32_t key) const noexcept {
        if (slots_.empty()) return k_missing;
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.value == k_empty) return k_missing;
            if (s.value != k_deleted && s.key == key) return s.value;
        }
    }

    void insert_or_assign(std::uint32_t key, std::uint32_t value) {
        if ((used_ + 1) * 10 > slots_.size() * 7) grow();
        std::size_t tomb = slots_.size();
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            Slot& s = slots_[i];
            if (s.value == k_empty) {
                Slot& target = tomb < slots_.size() ? slots_[tomb] : s;
                if (&target == &s) ++used_;
                target = {key, value};
                ++size_;
                return;
            }
            if (s.value == k_deleted) {
                if (tomb == slots_.size()) tomb = i;
            } else if (s.key == key) {
                s.value = value;
                return;
            }
        }
    }

    void erase(std::uint32_t key) noexcept {
        if (slots_.empty()) return;
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            Slot& s = slots_[i];
            if (s.value == k_empty) return;
            if (s.value != k_deleted && s.key == key) {
                s.value = k_deleted;
                --size_;
                return;
            }
        }
    }

    std::size_t size() const noexcept { return size_; }

  private:
    static constexpr std::uint32_t k_empty = 0xffffffffu;
    static constexpr std::uint32_t k_deleted = 0xfffffffeu;
    struct Slot {
        std::uint32_t key = 0;
        std::uint32_t value = k_empty;
    };

    std::size_t home(std::uint32_t key) const noexcept {
        return (static_cast<std::uint64_t>(key) * 0x9E3779B97F4A7C15ull >> 32) & mask_;
    }

    void grow() {
        std::vector<Slot> old = std::move(slots_);
        std::size_t cap = old.empty() ? 1024 : old.size();
        // Tombstones count as used: rebuilding at the same size clears them.
        while ((size_ + 1) * 10 > cap * 5) cap *= 2;
        slots_.assign(cap, Slot{});
        mask_ = cap - 1;
        used_ = size_ = 0;
        for (const Slot& s : old)
            if (s.value != k_empty && s.value != k_deleted) insert_or_assign(s.key, s.value);
    }

    std::vector<Slot> slots_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;  // live keys
    std::size_t used_ = 0;  // live keys plus tombstones
};

}  // namespace flowtop::table
