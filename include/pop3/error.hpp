#ifndef POP3_ERROR_HPP
#define POP3_ERROR_HPP

// Error codes of the pop3 library, their category, and how to tell
// "the server said no" from "the connection cannot go on".

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace pop3 {

using error_code = boost::system::error_code;

/// Every error the library reports itself. Values are stable; 0 is "no error".
enum class error {
    // The server answered -ERR. The session goes on; the server's text and
    // response code are in the operation's diagnostics.
    server_refused = 1,

    // Local validation: nothing was written to the server.
    argument_has_forbidden_char,   ///< CR, LF or NUL in a command argument
    argument_has_space,            ///< a space inside an argument that cannot hold one
    argument_empty,                ///< an argument that must not be empty is empty
    argument_too_long,             ///< over 40 octets (RFC 1939) without the opt-out
    command_too_long,              ///< over 255 octets with CRLF (RFC 2449) without the opt-out
    wrong_argument_count,          ///< the command takes a different number of arguments
    invalid_message_number,        ///< message numbers start at 1
    invalid_sasl_response,         ///< an AUTH continuation that is not base64 or "*"

    // Framing: the byte stream no longer makes sense; the connection is unusable.
    status_line_too_long,          ///< a status line over the configured cap (512 by default)
    bad_status_indicator,          ///< neither +OK, -ERR nor (for AUTH) a "+ " continuation
    nul_in_status_line,            ///< a NUL octet inside a status line
    unexpected_continuation,       ///< a "+ " continuation where the command allows none
    eof_in_status_line,            ///< the stream ended inside a status line
    eof_in_body,                   ///< the stream ended inside a multi-line reply
    body_too_large,                ///< a multi-line body over the configured cap
    parser_not_started,            ///< bytes fed to a reply parser that expects no reply

    // A well-framed reply whose content is malformed. The stream is still in
    // step with the commands, but the data cannot be used.
    line_too_long,                 ///< a line of a CAPA/LIST/UIDL/header body over the cap
    too_many_capabilities,         ///< a CAPA reply with more lines than the cap
    not_a_number,                  ///< a count, number or size that is not decimal digits
    negative_number,               ///< a count, number or size with a minus sign
    number_too_large,              ///< a count, number or size that does not fit in 64 bits
    bad_listing_line,              ///< a STAT/LIST/UIDL line of the wrong shape
    uid_too_long,                  ///< a UID over 70 octets (RFC 1939)
    uid_bad_char,                  ///< a UID octet outside 0x21-0x7E
    uid_empty,                     ///< a UIDL line without a UID
    no_apop_timestamp,             ///< the greeting has no <...@...> timestamp
    headers_too_large,             ///< a header block over the byte or field cap

    // Session layer.
    wrong_state,                   ///< the command is not allowed in the session's state; nothing sent
    plaintext_auth_refused,        ///< a password would cross an unencrypted connection; nothing sent
    not_connected,                 ///< the session has no connection
    message_too_large,             ///< a message over the whole-message cap; the rest was read and dropped
    timeout,                       ///< no progress within the timeout, or the session deadline passed
    session_failed,                ///< an earlier fatal error ended the session
    unexpected_data,               ///< the server sent bytes no command asked for
    connection_closed,             ///< the server closed the connection
    tls_required,                  ///< the operation needs TLS and the connection has none

    // Security.
    mechanism_not_offered,         ///< the mechanism asked for is not offered by the server; nothing sent
    sasl_bad_challenge,            ///< a SASL challenge the mechanism cannot use (bad base64, bad SCRAM data)
    server_signature_mismatch,     ///< SCRAM: the server did not prove it knows the password
    stls_injection,                ///< bytes followed the STLS +OK before TLS began
    certificate_pin_mismatch,      ///< the server's key matches none of the pinned ones

    // Added later; grouped here so that every value above stays as it was.
    too_many_entries,              ///< a LIST or UIDL reply with more entries than the cap (malformed)
    duplicate_message_number,      ///< a LIST or UIDL reply naming one message twice (malformed)
    /// A RETR or TOP body that begins with a POP3 status line: the server
    /// answered some command twice and every later reply is shifted by one.
    /// The session ends before anything else is sent.
    reply_out_of_step,
};

/// What an error means for the session that met it.
enum class error_class {
    none,              ///< no error
    server_refused,    ///< -ERR: the server said no; the session goes on
    usage,             ///< refused locally before anything was sent; the session goes on
    malformed_reply,   ///< a reply was framed right but its content is unusable
    stream_unusable,   ///< framing broke, the stream ended or failed: the session is over
};

const boost::system::error_category& category() noexcept;

inline error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), category()};
}

/// Classifies any error code a pop3 operation can complete with. Codes from
/// other categories (sockets, TLS, timers) make the stream unusable.
error_class classify(const error_code& ec) noexcept;

/// True when the connection cannot be used for another command.
inline bool is_fatal(const error_code& ec) noexcept {
    return classify(ec) == error_class::stream_unusable;
}

}  // namespace pop3

template <>
struct boost::system::is_error_code_enum<pop3::error> : std::true_type {};

#endif
