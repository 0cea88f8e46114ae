#include <pop3/diagnostics.hpp>
#include <pop3/response_code.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>

#include "tokens.hpp"

namespace pop3 {
namespace {

// RFC 2449: rchar = %x21-2E / %x30-5C / %x5E-7F, i.e. printable but "/" and "]".
bool is_rchar(unsigned char c) noexcept {
    return c >= 0x21 && c <= 0x7F && c != '/' && c != ']';
}

// True when `code` is `prefix` or starts with `prefix` followed by "/".
bool has_level_prefix(std::string_view code, std::string_view prefix) noexcept {
    if (code.size() < prefix.size()) return false;
    if (!detail::iequals(code.substr(0, prefix.size()), prefix)) return false;
    return code.size() == prefix.size() || code[prefix.size()] == '/';
}

}  // namespace

response_code_kind classify_response_code(std::string_view code) noexcept {
    static constexpr std::array<std::pair<std::string_view, response_code_kind>, 6> known{{
        {"IN-USE", response_code_kind::in_use},
        {"LOGIN-DELAY", response_code_kind::login_delay},
        {"SYS/TEMP", response_code_kind::sys_temp},
        {"SYS/PERM", response_code_kind::sys_perm},
        {"AUTH", response_code_kind::auth},
        {"UTF8", response_code_kind::utf8},
    }};
    for (const auto& [prefix, kind] : known)
        if (has_level_prefix(code, prefix)) return kind;
    return response_code_kind::unknown;
}

void split_response_code(std::string_view text, response_code& code, std::string_view& rest) {
    code.kind = response_code_kind::none;
    code.text.clear();
    rest = text;
    if (text.empty() || text.front() != '[') return;
    std::size_t i = 1;
    bool level_has_char = false;
    for (; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == ']') break;
        if (c == '/') {
            if (!level_has_char) return;  // empty level: not a response code
            level_has_char = false;
        } else if (is_rchar(c)) {
            level_has_char = true;
        } else {
            return;
        }
    }
    if (i == text.size() || !level_has_char) return;
    const std::string_view inner = text.substr(1, i - 1);
    code.text.assign(inner);
    code.kind = classify_response_code(inner);
    rest = text.substr(i + 1);
    if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
}

std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    out.reserve(std::min(s.size(), max) + 8);
    auto escape = [&](unsigned char c) {
        char buf[5];
        std::snprintf(buf, sizeof buf, "\\x%02X", c);
        out += buf;
    };
    std::size_t i = 0;
    while (i < s.size()) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        if (c == '\\') {
            out += "\\\\";
            ++i;
            continue;
        }
        // A well-formed UTF-8 sequence (no overlongs, no surrogates) passes whole.
        std::size_t len = 0;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) len = 3;
        else if (c >= 0xF0 && c <= 0xF4) len = 4;
        bool valid = len != 0 && i + len <= s.size();
        for (std::size_t k = 1; valid && k < len; ++k)
            valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
        if (valid && len >= 3) {
            const auto c1 = static_cast<unsigned char>(s[i + 1]);
            if (c == 0xE0 && c1 < 0xA0) valid = false;  // overlong
            if (c == 0xED && c1 >= 0xA0) valid = false;  // surrogate
            if (c == 0xF0 && c1 < 0x90) valid = false;  // overlong
            if (c == 0xF4 && c1 >= 0x90) valid = false;  // over U+10FFFF
        }
        if (valid) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            escape(c);
            ++i;
        }
    }
    return out;
}

}  // namespace pop3
