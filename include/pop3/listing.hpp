#ifndef POP3_LISTING_HPP
#define POP3_LISTING_HPP

// STAT, LIST and UIDL results (RFC 1939 sections 5 and 7).

#include <pop3/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace pop3 {

/// RFC 1939: a UID is 1 to 70 octets in 0x21-0x7E.
inline constexpr std::size_t max_uid_length = 70;

struct stat_info {
    std::uint64_t count = 0;
    std::uint64_t octets = 0;
};

struct list_entry {
    std::uint64_t number = 0;
    std::uint64_t octets = 0;
};

struct uidl_entry {
    std::uint64_t number = 0;
    std::string uid;
};

/// Parses an unsigned decimal number: not_a_number, negative_number or
/// number_too_large (over 2^64 - 1) when it is not one.
error_code parse_number(std::string_view token, std::uint64_t& out) noexcept;

/// Checks a UID: uid_empty, uid_too_long, uid_bad_char.
error_code check_uid(std::string_view uid) noexcept;

/// The text of STAT's +OK: "count octets", optionally followed by more.
error_code parse_stat(std::string_view status_text, stat_info& out) noexcept;

/// One scan listing: "number octets", optionally followed by more. Used for
/// the lines of LIST and for the text of LIST n's +OK. Message number 0 is
/// bad_listing_line.
error_code parse_list_line(std::string_view line, list_entry& out) noexcept;

/// One unique-id listing: "number uid". Used for the lines of UIDL and for
/// the text of UIDL n's +OK.
error_code parse_uidl_line(std::string_view line, uidl_entry& out);

}  // namespace pop3

#endif
