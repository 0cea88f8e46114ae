#ifndef POP3_LINE_READER_HPP
#define POP3_LINE_READER_HPP

// Splits a streamed multi-line body (CAPA, LIST, UIDL, a header block) into
// lines, holding at most one partial line of bounded length.

#include <pop3/error.hpp>

#include <cstring>
#include <string>
#include <string_view>

namespace pop3 {

class line_reader {
public:
    explicit line_reader(std::size_t max_line) noexcept : max_line_(max_line) {}

    /// Feeds one body chunk. Calls `on_line(std::string_view)` for each
    /// complete line, without its CRLF or LF; `on_line` returns an
    /// error_code, and a non-empty one stops the reader and is returned.
    /// A line over max_line octets is error::line_too_long.
    template <class OnLine>
    error_code feed(std::string_view chunk, OnLine&& on_line) {
        while (!chunk.empty()) {
            const void* lf = std::memchr(chunk.data(), '\n', chunk.size());
            if (lf == nullptr) {
                if (chunk.size() > max_line_ - partial_.size()) return error::line_too_long;
                partial_.append(chunk);
                return {};
            }
            const auto n = static_cast<std::size_t>(static_cast<const char*>(lf) - chunk.data());
            std::string_view line = chunk.substr(0, n);
            chunk.remove_prefix(n + 1);
            if (!partial_.empty()) {
                if (line.size() > max_line_ - partial_.size()) return error::line_too_long;
                partial_.append(line);
                line = partial_;
            } else if (line.size() > max_line_) {
                return error::line_too_long;
            }
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            error_code ec = on_line(line);
            partial_.clear();
            if (ec) return ec;
        }
        return {};
    }

    /// Ends the body: a last line without a line ending is passed on.
    template <class OnLine>
    error_code finish(OnLine&& on_line) {
        if (partial_.empty()) return {};
        std::string_view line = partial_;
        if (line.back() == '\r') line.remove_suffix(1);
        error_code ec = on_line(line);
        partial_.clear();
        return ec;
    }

private:
    std::size_t max_line_;
    std::string partial_;
};

}  // namespace pop3

#endif
