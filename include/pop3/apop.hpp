#ifndef POP3_APOP_HPP
#define POP3_APOP_HPP

// APOP (RFC 1939 section 7): the greeting's timestamp and the digest.

#include <pop3/error.hpp>

#include <string>
#include <string_view>

namespace pop3 {

/// Finds the APOP timestamp in the greeting's text. Only the msg-id form
/// "<left@right>" is accepted (printable ASCII, no blanks or brackets inside,
/// text on both sides of one "@"): anything else is no_apop_timestamp, so
/// APOP is never attempted against a timestamp an attacker could shape into
/// a chosen-prefix MD5 input. On success `timestamp` views into `greeting`,
/// brackets included.
error_code find_apop_timestamp(std::string_view greeting, std::string_view& timestamp) noexcept;

/// The APOP digest: lower-case hex MD5 of timestamp followed by secret.
std::string apop_digest(std::string_view timestamp, std::string_view secret);

}  // namespace pop3

#endif
