#include <pop3/listing.hpp>

#include "tokens.hpp"

namespace pop3 {

error_code parse_number(std::string_view token, std::uint64_t& out) noexcept {
    if (token.empty()) return error::not_a_number;
    if (token.front() == '-') {
        if (token.size() > 1 && detail::all_digits(token.substr(1))) return error::negative_number;
        return error::not_a_number;
    }
    if (!detail::all_digits(token)) return error::not_a_number;
    std::uint64_t value = 0;
    for (char c : token) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) return error::number_too_large;
        value = value * 10 + digit;
    }
    out = value;
    return {};
}

error_code check_uid(std::string_view uid) noexcept {
    if (uid.empty()) return error::uid_empty;
    if (uid.size() > max_uid_length) return error::uid_too_long;
    for (char c : uid) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x21 || u > 0x7E) return error::uid_bad_char;
    }
    return {};
}

namespace {

// The two leading tokens of a listing line, each parsed as a number.
error_code parse_number_pair(std::string_view line, std::uint64_t& a, std::uint64_t& b) noexcept {
    detail::token_cursor cur{line};
    const std::string_view first = cur.next();
    const std::string_view second = cur.next();
    if (first.empty() || second.empty()) return error::bad_listing_line;
    if (auto ec = parse_number(first, a)) return ec;
    return parse_number(second, b);
}

}  // namespace

error_code parse_stat(std::string_view status_text, stat_info& out) noexcept {
    stat_info s;
    if (auto ec = parse_number_pair(status_text, s.count, s.octets)) return ec;
    out = s;
    return {};
}

error_code parse_list_line(std::string_view line, list_entry& out) noexcept {
    list_entry e;
    if (auto ec = parse_number_pair(line, e.number, e.octets)) return ec;
    if (e.number == 0) return error::bad_listing_line;
    out = e;
    return {};
}

error_code parse_uidl_line(std::string_view line, uidl_entry& out) {
    detail::token_cursor cur{line};
    const std::string_view number = cur.next();
    if (number.empty()) return error::bad_listing_line;
    std::uint64_t n = 0;
    if (auto ec = parse_number(number, n)) return ec;
    if (n == 0) return error::bad_listing_line;
    const std::string_view uid = cur.next();
    if (auto ec = check_uid(uid)) return ec;
    // Anything after the UID is not allowed: a UID cannot hold a space.
    if (!cur.rest().empty()) return error::uid_bad_char;
    out.number = n;
    out.uid.assign(uid);
    return {};
}

}  // namespace pop3
