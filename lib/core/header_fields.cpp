#include <pop3/header_fields.hpp>

#include "tokens.hpp"

namespace pop3 {
namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && detail::is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && detail::is_space(s.back())) s.remove_suffix(1);
    return s;
}

// RFC 5322 ftext: printable ASCII but ':'.
bool is_field_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 33 || u > 126 || c == ':') return false;
    }
    return true;
}

}  // namespace

error_code parse_header_fields(std::string_view message, std::vector<header_field>& out,
                               const parser_limits& limits) {
    std::size_t pos = 0;
    bool last_is_field = false;  // may a continuation line extend out.back()?
    while (pos < message.size()) {
        std::size_t end = message.find('\n', pos);
        const std::size_t next = end == std::string_view::npos ? message.size() : end + 1;
        if (next > limits.max_header_bytes) return error::headers_too_large;
        std::string_view line = message.substr(pos, (end == std::string_view::npos ? message.size() : end) - pos);
        pos = next;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // end of the header block

        if (detail::is_space(line.front())) {
            if (last_is_field) {
                const std::string_view more = trim(line);
                if (!more.empty()) {
                    std::string& value = out.back().value;
                    if (!value.empty()) value += ' ';
                    value.append(more);
                }
            }
            continue;
        }
        const std::size_t colon = line.find(':');
        last_is_field = false;
        if (colon == std::string_view::npos) continue;
        // Obsolete syntax allows blanks between the name and the colon.
        const std::string_view name = trim(line.substr(0, colon));
        if (!is_field_name(name)) continue;
        if (out.size() >= limits.max_header_fields) return error::headers_too_large;
        out.push_back({std::string(name), std::string(trim(line.substr(colon + 1)))});
        last_is_field = true;
    }
    return {};
}

const header_field* find_header(const std::vector<header_field>& fields, std::string_view name) noexcept {
    for (const auto& f : fields)
        if (detail::iequals(f.name, name)) return &f;
    return nullptr;
}

}  // namespace pop3
