#ifndef POP3_CAPABILITIES_HPP
#define POP3_CAPABILITIES_HPP

// The CAPA reply (RFC 2449 section 5), with the RFC 2595, 5034 and 6856
// capabilities.

#include <pop3/error.hpp>
#include <pop3/limits.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pop3 {

/// One capability line: its name (upper-cased) and its arguments as sent.
struct capability {
    std::string name;
    std::vector<std::string> args;
};

/// LOGIN-DELAY n [USER]: the least number of seconds between two logins.
struct login_delay_policy {
    std::uint64_t seconds = 0;
    bool per_user = false;  ///< USER: the value may differ per user (seen before login)
};

/// EXPIRE n|NEVER [USER]: how long the server keeps retrieved messages.
struct expire_policy {
    bool never = false;
    std::uint64_t days = 0;  ///< 0 means messages are deleted at the end of the session
    bool per_user = false;
};

struct capabilities {
    bool top = false;
    bool user = false;
    bool uidl = false;
    bool pipelining = false;
    bool resp_codes = false;
    bool auth_resp_code = false;
    bool stls = false;
    bool utf8 = false;
    bool utf8_user = false;  ///< UTF8 USER: user names and passwords may be UTF-8
    bool lang = false;
    std::vector<std::string> sasl;  ///< SASL mechanism names, upper-cased
    std::optional<login_delay_policy> login_delay;
    std::optional<expire_policy> expire;
    std::string implementation;  ///< IMPLEMENTATION's text, as sent
    std::vector<capability> all;  ///< every line, known or not, in the order sent

    /// True when a capability of that name (any case) was listed.
    bool has(std::string_view name) const noexcept;
    /// True when SASL lists the mechanism (any case).
    bool has_sasl(std::string_view mechanism) const noexcept;

    /// Adds one line of the CAPA body. Unknown capabilities are kept in
    /// `all`; a known one with a malformed argument is an error
    /// (not_a_number, negative_number, number_too_large). An empty line is
    /// ignored. Past limits.max_capabilities lines: too_many_capabilities.
    error_code add_line(std::string_view line, const parser_limits& limits = {});
};

/// Parses a whole unstuffed CAPA body (the lines between the status line
/// and the terminator).
error_code parse_capabilities(std::string_view body, capabilities& out,
                              const parser_limits& limits = {});

}  // namespace pop3

#endif
