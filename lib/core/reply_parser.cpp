#include <pop3/reply_parser.hpp>

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tokens.hpp"

namespace pop3 {
namespace {

/// The index of the first LF in [p, p + n - 1) that is followed by a dot
/// (the start of a line the parser must look at), or n. A body is mostly
/// lines that do not start with a dot: scanning for the pair, sixteen
/// octets at a time, skips them without a call per line.
std::size_t find_lf_dot(const char* p, std::size_t n) noexcept {
    std::size_t i = 0;
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i dot = _mm_set1_epi8('.');
    for (; i + 17 <= n; i += 16) {
        const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 1));
        const int hits = _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, lf), _mm_cmpeq_epi8(next, dot)));
        if (hits != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(hits)));
    }
#endif
    while (i + 1 < n) {
        const void* at = std::memchr(p + i, '\n', n - 1 - i);
        if (at == nullptr) break;
        i = static_cast<std::size_t>(static_cast<const char*>(at) - p);
        if (p[i + 1] == '.') return i;
        ++i;
    }
    return n;
}

// Used when the CR after a stuffing dot was consumed in an earlier call and
// turns out to be body data: it can no longer be shown as a view into input.
constexpr std::string_view lone_cr{"\r", 1};

bool starts_with_nocase(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() < prefix.size()) return false;
    return detail::iequals(s.substr(0, prefix.size()), prefix);
}

// "+OK" / "-ERR" followed by the end of the line or a space. "+OKAY" is not
// a status indicator. Case is not checked (servers exist that send "+ok").
bool is_indicator(std::string_view line, std::string_view indicator) noexcept {
    return starts_with_nocase(line, indicator) &&
           (line.size() == indicator.size() || line[indicator.size()] == ' ');
}

}  // namespace

void reply_parser::start(reply_shape shape) noexcept {
    shape_ = shape;
    state_ = state::status;
    scanned_ = 0;
    body_size_ = 0;
}

error_code reply_parser::on_eof() const noexcept {
    switch (state_) {
    case state::idle:
    case state::failed:
        return {};
    case state::status:
        return error::eof_in_status_line;
    default:
        return error::eof_in_body;
    }
}

parse_result reply_parser::parse(std::string_view input, error_code& ec) {
    ec = {};
    switch (state_) {
    case state::idle:
    case state::failed:
        if (input.empty()) return {};
        state_ = state::failed;
        ec = error::parser_not_started;
        return {};
    case state::status:
        return parse_status(input, ec);
    default:
        return parse_body(input, ec);
    }
}

parse_result reply_parser::parse_in_place(char* input, std::size_t size, error_code& ec) {
    switch (state_) {
    case state::line_start:
    case state::in_line:
    case state::dot:
        ec = {};
        return gather_body(input, size, ec);
    default:
        return parse({input, size}, ec);
    }
}

parse_result reply_parser::gather_body(char* data, std::size_t n, error_code& ec) noexcept {
    // Where a body line goes on without a decision to make (no dot at a
    // line start, or a stuffing dot followed by text), gather; everything
    // else (a terminator, ".\r", too few octets to tell) is parse_body's.
    std::size_t pos = 0;
    if (state_ == state::line_start && n >= 2 && data[0] == '.' && data[1] != '\r' && data[1] != '\n') {
        pos = 1;  // a stuffing dot: dropped
        state_ = state::in_line;
    } else if (state_ == state::line_start && n >= 1 && data[0] != '.') {
        state_ = state::in_line;
    } else if (state_ == state::dot && n >= 1 && data[0] != '\r' && data[0] != '\n') {
        state_ = state::in_line;  // the dot before was stuffing
    }
    if (state_ != state::in_line || pos == n) return parse_body({data, n}, ec);
    const std::size_t begin = pos;
    std::size_t out = pos;  // the gathered octets are [begin, out)
    for (;;) {
        const std::size_t lf = find_lf_dot(data + pos, n - pos);
        const bool at_dot = lf != n - pos;
        const std::size_t end = at_dot ? pos + lf + 1 : n;
        if (out != pos) std::memmove(data + out, data + pos, end - pos);
        out += end - pos;
        pos = end;
        if (!at_dot) {
            state_ = data[n - 1] == '\n' ? state::line_start : state::in_line;
            break;
        }
        // data[pos] is a dot at the start of a line.
        state_ = state::line_start;
        if (pos + 1 < n && data[pos + 1] != '\r' && data[pos + 1] != '\n') {
            ++pos;  // stuffing: dropped, and the line goes on into the view
            state_ = state::in_line;
            continue;
        }
        break;  // the dot is parse_body's on the next call
    }
    return emit_body({data + begin, out - begin}, pos, ec);
}

parse_result reply_parser::parse_status(std::string_view input, error_code& ec) {
    const std::size_t window = std::min(input.size(), limits_.max_status_line);
    const void* lf = scanned_ < window
                         ? std::memchr(input.data() + scanned_, '\n', window - scanned_)
                         : nullptr;
    if (lf == nullptr) {
        if (input.size() >= limits_.max_status_line) {
            state_ = state::failed;
            ec = error::status_line_too_long;
            return {};
        }
        scanned_ = window;
        return {};
    }
    const auto line_end = static_cast<std::size_t>(static_cast<const char*>(lf) - input.data());
    std::string_view line = input.substr(0, line_end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) {
        state_ = state::failed;
        ec = error::nul_in_status_line;
        return {};
    }

    std::string_view rest;
    if (is_indicator(line, "+OK")) {
        status_.indicator = status_indicator::ok;
        rest = line.substr(3);
    } else if (is_indicator(line, "-ERR")) {
        status_.indicator = status_indicator::err;
        rest = line.substr(4);
    } else if (line.size() >= 1 && line[0] == '+' && (line.size() == 1 || line[1] == ' ')) {
        if (shape_ != reply_shape::sasl) {
            state_ = state::failed;
            ec = error::unexpected_continuation;
            return {};
        }
        status_.indicator = status_indicator::continuation;
        status_.code = {};
        rest = line.substr(1);
        if (!rest.empty()) rest.remove_prefix(1);
        status_.text.assign(rest);
        state_ = state::idle;
        return {parse_event::status, line_end + 1, {}};
    } else {
        state_ = state::failed;
        ec = error::bad_status_indicator;
        return {};
    }
    if (!rest.empty()) rest.remove_prefix(1);  // the space after the indicator
    std::string_view text;
    split_response_code(rest, status_.code, text);
    status_.text.assign(text);

    const bool body_follows = shape_ == reply_shape::multi_line && status_.ok();
    state_ = body_follows ? state::line_start : state::idle;
    return {parse_event::status, line_end + 1, {}};
}

parse_result reply_parser::emit_body(std::string_view chunk, std::size_t consumed,
                                     error_code& ec) noexcept {
    if (chunk.size() > limits_.max_body - body_size_) {
        state_ = state::failed;
        ec = error::body_too_large;
        return {};
    }
    body_size_ += chunk.size();
    return {parse_event::body, consumed, chunk};
}

parse_result reply_parser::parse_body(std::string_view input, error_code& ec) noexcept {
    const char* const data = input.data();
    const std::size_t n = input.size();
    std::size_t pos = 0;
    for (;;) {
        switch (state_) {
        case state::line_start:
            if (pos == n) return {parse_event::need_more, pos, {}};
            if (data[pos] == '.') {
                ++pos;
                state_ = state::dot;
                continue;
            }
            state_ = state::in_line;
            [[fallthrough]];
        case state::in_line: {
            if (pos == n) return {parse_event::need_more, pos, {}};
            // Take whole lines while the next one does not start with a dot,
            // so a typical buffer comes out as one view: up to the LF before
            // a dot, or all of the input (which may end inside a line).
            const std::size_t begin = pos;
            const std::size_t lf = find_lf_dot(data + pos, n - pos);
            if (lf != n - pos) {
                pos += lf + 1;
                state_ = state::line_start;
            } else {
                pos = n;
                if (data[n - 1] == '\n') state_ = state::line_start;
            }
            return emit_body(input.substr(begin, pos - begin), pos, ec);
        }
        case state::dot:
            if (pos == n) return {parse_event::need_more, pos, {}};
            if (data[pos] == '\n') {
                state_ = state::idle;
                return {parse_event::done, pos + 1, {}};
            }
            if (data[pos] == '\r') {
                ++pos;
                state_ = state::dot_cr;
                continue;
            }
            state_ = state::in_line;  // the dot was stuffing: dropped
            continue;
        case state::dot_cr:
            if (pos == n) return {parse_event::need_more, pos, {}};
            if (data[pos] == '\n') {
                state_ = state::idle;
                return {parse_event::done, pos + 1, {}};
            }
            // ".\rX": the dot was stuffing and the CR is data.
            state_ = state::in_line;
            return emit_body(lone_cr, pos, ec);
        default:
            return {};
        }
    }
}

}  // namespace pop3
