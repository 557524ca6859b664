#include "flowtop/util/string_pool.hpp"

#include "flowtop/util/text.hpp"

namespace flowtop {

StringPool::StringPool() { intern(""); }  // id 0 is the empty "unknown" string

StrId StringPool::intern(std::string_view s) {
    // The one door every shown string comes through: what others control (process names,
    // command lines, PTR answers, mmdb and conf strings) is made harmless here, once.
    if (!is_clean(s)) {
        const std::string clean = sanitize(s);
        return intern(clean);
    }
    if (auto it = index_.find(s); it != index_.end()) return it->second;
    std::size_t id = count_.load(std::memory_order_relaxed);
    std::size_t chunk = id >> k_chunk_bits;
    if (chunk >= k_max_chunks) return k_no_string;  // full: degrade to "unknown", never crash
    if (!owners_[chunk]) {
        owners_[chunk] = std::make_unique<std::string[]>(k_chunk_size);
        chunks_[chunk].store(owners_[chunk].get(), std::memory_order_release);
    }
    std::string& slot = owners_[chunk][id & (k_chunk_size - 1)];
    slot.assign(s);
    count_.store(id + 1, std::memory_order_release);
    index_.emplace(std::string_view(slot), static_cast<StrId>(id));
    return static_cast<StrId>(id);
}

std::string_view StringPool::get(StrId id) const noexcept {
    if (id >= count_.load(std::memory_order_acquire)) return {};
    const std::string* chunk = chunks_[id >> k_chunk_bits].load(std::memory_order_acquire);
    return chunk[id & (k_chunk_size - 1)];
}

}  // namespace flowtop
