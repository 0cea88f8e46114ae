#ifndef POP3_LIB_SESSION_READ_BUFFER_HPP
#define POP3_LIB_SESSION_READ_BUFFER_HPP

// A session's read buffer. A session gives its buffer back whenever nothing
// is pending, so an idle session holds none; a busy one gives it back between
// commands many times a session. Buffers given back are kept for reuse by a
// small cache per thread (at most `cache_bytes` in all), so that a thousand
// sessions taking turns do not each pay malloc, free and zero-filling for
// tens of KiB a few times a second. Not installed.

#include <cstddef>
#include <cstring>
#include <utility>

namespace pop3::detail {

class read_buffer {
public:
    /// What one thread keeps of buffers given back.
    static constexpr std::size_t cache_bytes = 1u << 20;

    read_buffer() = default;
    read_buffer(const read_buffer&) = delete;
    read_buffer& operator=(const read_buffer&) = delete;
    ~read_buffer() { reset(); }

    char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }

    /// Makes the buffer at least `n` octets long, keeping [0, keep).
    void grow(std::size_t n, std::size_t keep) {
        if (n <= size_) return;
        char* bigger = take(n);
        if (keep != 0) std::memcpy(bigger, data_, keep);
        reset();
        data_ = bigger;
        size_ = n;
    }

    /// Gives the buffer back (to this thread's cache, or to the heap).
    void reset() noexcept {
        if (data_ == nullptr) return;
        give(data_, size_);
        data_ = nullptr;
        size_ = 0;
    }

private:
    static char* take(std::size_t n);
    static void give(char* p, std::size_t n) noexcept;

    char* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace pop3::detail

#endif
