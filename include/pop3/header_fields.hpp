#ifndef POP3_HEADER_FIELDS_HPP
#define POP3_HEADER_FIELDS_HPP

// A message's header block as name/value pairs: what TOP n 0 returns, parsed.

#include <pop3/error.hpp>
#include <pop3/limits.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace pop3 {

struct header_field {
    std::string name;   ///< as sent, e.g. "Subject"
    std::string value;  ///< unfolded: folded lines joined by one space, outer blanks trimmed
};

/// Parses the header block at the start of `message` (unstuffed, CRLF or LF
/// line endings) up to the first empty line or the end. Lines that are not
/// fields (no colon, a name outside printable ASCII, a continuation before
/// any field, an mbox "From " line) are skipped. Over
/// limits.max_header_bytes octets or limits.max_header_fields fields:
/// headers_too_large, and `out` holds the fields read until then.
error_code parse_header_fields(std::string_view message, std::vector<header_field>& out,
                               const parser_limits& limits = {});

/// The value of the first field of that name (any case), or nullptr.
const header_field* find_header(const std::vector<header_field>& fields, std::string_view name) noexcept;

}  // namespace pop3

#endif
