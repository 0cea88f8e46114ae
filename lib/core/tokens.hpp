#ifndef POP3_LIB_CORE_TOKENS_HPP
#define POP3_LIB_CORE_TOKENS_HPP

// Small text helpers shared by the core's parsers. Not installed.

#include <string>
#include <string_view>

namespace pop3::detail {

inline bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

inline bool all_digits(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

inline char to_upper(char c) noexcept {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (to_upper(a[i]) != to_upper(b[i])) return false;
    return true;
}

inline std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = to_upper(c);
    return out;
}

/// Walks a line token by token, tokens separated by runs of spaces or tabs.
struct token_cursor {
    std::string_view text;

    std::string_view next() noexcept {
        std::size_t i = 0;
        while (i < text.size() && is_space(text[i])) ++i;
        std::size_t j = i;
        while (j < text.size() && !is_space(text[j])) ++j;
        const std::string_view token = text.substr(i, j - i);
        text.remove_prefix(j);
        return token;
    }

    /// What is left after the tokens taken, without leading blanks.
    std::string_view rest() const noexcept {
        std::size_t i = 0;
        while (i < text.size() && is_space(text[i])) ++i;
        return text.substr(i);
    }
};

}  // namespace pop3::detail

#endif
