#include "read_buffer.hpp"

#include <new>
#include <vector>

namespace pop3::detail {
namespace {

// Buffers given back on this thread, by exact size: sessions ask for a few
// sizes only (a start size doubling up to read_size, plus the status-line
// allowance), so a short list of them is enough.
constexpr std::size_t max_sizes = 8;  // a buffer of a ninth size is not kept

struct buffer_cache {
    struct bucket {
        std::size_t size;
        std::vector<char*> free;
    };
    std::vector<bucket> buckets;
    std::size_t bytes = 0;

    buffer_cache() = default;
    buffer_cache(const buffer_cache&) = delete;
    buffer_cache& operator=(const buffer_cache&) = delete;
    ~buffer_cache() {
        for (auto& b : buckets)
            for (char* p : b.free) delete[] p;
    }

    bucket* find(std::size_t n) noexcept {
        for (auto& b : buckets)
            if (b.size == n) return &b;
        return nullptr;
    }
};

buffer_cache& cache() {
    thread_local buffer_cache c;
    return c;
}

}  // namespace

char* read_buffer::take(std::size_t n) {
    buffer_cache& c = cache();
    if (auto* b = c.find(n); b != nullptr && !b->free.empty()) {
        char* p = b->free.back();
        b->free.pop_back();
        c.bytes -= n;
        return p;
    }
    return new char[n];  // not zero-filled: a read overwrites what it reports
}

void read_buffer::give(char* p, std::size_t n) noexcept {
    buffer_cache& c = cache();
    if (c.bytes + n <= cache_bytes) {
        auto* b = c.find(n);
        try {
            if (b == nullptr && c.buckets.size() < max_sizes) b = &c.buckets.emplace_back(buffer_cache::bucket{n, {}});
            if (b != nullptr) {
                b->free.push_back(p);
                c.bytes += n;
                return;
            }
        } catch (const std::bad_alloc&) {  // no room to keep it: it goes back to the heap
        }
    }
    delete[] p;
}

}  // namespace pop3::detail
