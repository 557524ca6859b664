#pragma once
// The rows of the table and of every frame: a vector-like sequence stored in fixed chunks that
// frames share copy-on-write. Publishing a frame copies chunk pointers, not rows; the writer
// copies a chunk only when it changes a row that a frame still shows. At a million mostly idle
// flows that keeps memory near one copy of the table instead of one per frame.
#include <array>
#include <atomic>
#include <cstddef>
#include <iterator>
#include <memory>
#include <vector>

#include "flowtop/table/flow_row.hpp"

#if defined(__SANITIZE_THREAD__)  // g++
#define FLOWTOP_TSAN 1
#elif defined(__has_feature)  // clang
#if __has_feature(thread_sanitizer)
#define FLOWTOP_TSAN 1
#endif
#endif
#ifndef FLOWTOP_TSAN
#define FLOWTOP_TSAN 0
#endif

namespace flowtop::table {

class FlowRows {
  public:
    static constexpr std::size_t k_chunk_rows = 256;
    using Chunk = std::array<FlowRow, k_chunk_rows>;

    template <bool Const>
    class Iterator {
      public:
        using iterator_category = std::random_access_iterator_tag;
        using value_type = FlowRow;
        using difference_type = std::ptrdiff_t;
        using pointer = std::conditional_t<Const, const FlowRow*, FlowRow*>;
        using reference = std::conditional_t<Const, const FlowRow&, FlowRow&>;
        using Owner = std::conditional_t<Const, const FlowRows, FlowRows>;

        Iterator() = default;
        Iterator(Owner* owner, std::size_t i) : owner_(owner), i_(i) {}
        reference operator*() const { return (*owner_)[i_]; }
        pointer operator->() const { return &(*owner_)[i_]; }
        reference operator[](difference_type n) const { return (*owner_)[i_ + n]; }
        Iterator& operator++() {
            ++i_;
            return *this;
        }
        Iterator operator++(int) {
            auto t = *this;
            ++i_;
            return t;
        }
        Iterator& operator--() {
            --i_;
            return *this;
        }
        Iterator operator--(int) {
            auto t = *this;
            --i_;
            return t;
        }
        Iterator& operator+=(difference_type n) {
            i_ += n;
            return *this;
        }
        Iterator& operator-=(difference_type n) {
            i_ -= n;
            return *this;
        }
        friend Iterator operator+(Iterator it, difference_type n) { return it += n; }
        friend Iterator operator+(difference_type n, Iterator it) { return it += n; }
        friend Iterator operator-(Iterator it, difference_type n) { return it -= n; }
        friend difference_type operator-(const Iterator& a, const Iterator& b) {
            return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
        }
        friend bool operator==(const Iterator& a, const Iterator& b) { return a.i_ == b.i_; }
        friend auto operator<=>(const Iterator& a, const Iterator& b) { return a.i_ <=> b.i_; }

      private:
        Owner* owner_ = nullptr;
        std::size_t i_ = 0;
    };
    using iterator = Iterator<false>;
    using const_iterator = Iterator<true>;
    using value_type = FlowRow;
    using size_type = std::size_t;

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    const FlowRow& operator[](std::size_t i) const noexcept {
        return (*chunks_[i / k_chunk_rows])[i % k_chunk_rows];
    }
    // Writable access: the row's chunk is copied first if any frame still shares it.
    FlowRow& operator[](std::size_t i) { return (*own(i / k_chunk_rows))[i % k_chunk_rows]; }

    const FlowRow& front() const { return (*this)[0]; }
    const FlowRow& back() const { return (*this)[size_ - 1]; }
    FlowRow& front() { return (*this)[0]; }
    FlowRow& back() { return (*this)[size_ - 1]; }

    const_iterator begin() const { return {this, 0}; }
    const_iterator end() const { return {this, size_}; }
    iterator begin() { return {this, 0}; }
    iterator end() { return {this, size_}; }

    void push_back(const FlowRow& row) {
        if (size_ % k_chunk_rows == 0 && size_ / k_chunk_rows == chunks_.size())
            chunks_.push_back(std::make_shared<Chunk>());
        (*this)[size_++] = row;
    }
    void pop_back() noexcept {
        --size_;
        if (size_ % k_chunk_rows == 0) chunks_.resize(size_ / k_chunk_rows);
    }
    void resize(std::size_t n) {
        while (size_ < n) push_back(FlowRow{});
        while (size_ > n) pop_back();
    }
    void clear() noexcept {
        chunks_.clear();
        size_ = 0;
    }
    void reserve(std::size_t) noexcept {}

    // Chunks held by this sequence alone: what changing it costs no copy for.
    std::size_t chunk_count() const noexcept { return chunks_.size(); }

  private:
    Chunk* own(std::size_t c) {
        auto& chunk = chunks_[c];
        if (chunk.use_count() > 1) {
            chunk = std::make_shared<Chunk>(*chunk);
        } else {
            // Pairs with the release in the last reader's shared_ptr destructor.
#if FLOWTOP_TSAN
            // ThreadSanitizer does not model standalone fences (g++ refuses them with -Wtsan).
            // Copying and dropping the pointer does the same acquire the way TSan sees it: the
            // drop is an acq_rel decrement of the count the last reader released.
            [[maybe_unused]] const auto pin = chunk;
#else
            std::atomic_thread_fence(std::memory_order_acquire);
#endif
        }
        return chunk.get();
    }

    std::vector<std::shared_ptr<Chunk>> chunks_;
    std::size_t size_ = 0;
};

}  // namespace flowtop::table
