#ifndef POP3_RESPONSE_CODE_HPP
#define POP3_RESPONSE_CODE_HPP

// RFC 2449 extended response codes (section 8), with the RFC 3206 and
// RFC 6856 ones the library acts on.

#include <string>
#include <string_view>

namespace pop3 {

enum class response_code_kind {
    none,         ///< the reply carries no response code
    in_use,       ///< [IN-USE]: the maildrop is locked by another session (RFC 2449)
    login_delay,  ///< [LOGIN-DELAY]: logged in too soon after the last login (RFC 2449)
    sys_temp,     ///< [SYS/TEMP]: a temporary system problem (RFC 3206)
    sys_perm,     ///< [SYS/PERM]: a permanent system problem (RFC 3206)
    auth,         ///< [AUTH]: the credentials are wrong (RFC 3206)
    utf8,         ///< [UTF8]: the command needs UTF8 mode (RFC 6856)
    unknown,      ///< a syntactically valid code the library does not know; text() has it
};

/// A response code as the server sent it. Hierarchical codes are matched by
/// their longest known prefix: "SYS/TEMP/QUOTA" is sys_temp, "SYS/X" is unknown.
struct response_code {
    response_code_kind kind = response_code_kind::none;
    std::string text;  ///< the code between the brackets, e.g. "SYS/TEMP"

    /// True for codes after which the same login may succeed later.
    bool is_transient() const noexcept {
        return kind == response_code_kind::in_use || kind == response_code_kind::login_delay ||
               kind == response_code_kind::sys_temp;
    }
};

/// Returns the kind for the text between the brackets.
response_code_kind classify_response_code(std::string_view code) noexcept;

/// Splits "[CODE] rest" into the code and the rest. When `text` does not start
/// with a well-formed code (RFC 2449: "[" level *("/" level) "]"), the code is
/// kind none and `rest` is the whole text.
void split_response_code(std::string_view text, response_code& code, std::string_view& rest);

}  // namespace pop3

#endif
