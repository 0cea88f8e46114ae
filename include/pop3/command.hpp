#ifndef POP3_COMMAND_HPP
#define POP3_COMMAND_HPP

// Encoding of POP3 commands (RFC 1939, 2449, 2595, 5034, 6856). Every
// argument is validated before anything is appended: CR, LF and NUL are
// refused outright, so no argument can ever inject a second command.

#include <pop3/error.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace pop3 {

enum class command_kind {
    user, pass, apop, auth, stat, list, retr, dele, noop, rset, quit,
    top, uidl, capa, stls, utf8, lang, last,
};

/// How the reply to a command is framed.
enum class reply_shape {
    single_line,  ///< one status line
    multi_line,   ///< a status line; after +OK, a dot-terminated body
    sasl,         ///< +OK, -ERR, or a "+ " continuation (AUTH)
};

/// RFC 1939 section 3: an argument is at most 40 octets.
inline constexpr std::size_t rfc_max_argument = 40;
/// RFC 2449 section 4: a command is at most 255 octets including CRLF.
inline constexpr std::size_t rfc_max_command = 255;
/// The cap that holds even with allow_long_arguments (OAuth tokens fit).
inline constexpr std::size_t hard_max_command = 64 * 1024;

struct encode_options {
    /// Lifts the RFC limits on argument and command length, for servers known
    /// to take longer user names, passwords or SASL initial responses.
    /// Commands stay under hard_max_command.
    bool allow_long_arguments = false;
};

/// The command keyword, e.g. "RETR".
std::string_view keyword(command_kind kind) noexcept;

/// How the reply is framed, given how many arguments the command carries:
/// LIST and UIDL with no argument, RETR, TOP, CAPA and LANG with no
/// argument are multi-line; AUTH is sasl; the rest single-line.
reply_shape shape_of(command_kind kind, std::size_t argument_count) noexcept;

/// True for commands whose arguments are secrets (PASS, AUTH): logs must
/// redact them.
bool carries_secret(command_kind kind) noexcept;

/// Appends one command with its CRLF to `out`. On error `out` is unchanged.
/// Arity per command: USER 1, PASS 1 (may hold spaces), APOP 2 (name, digest),
/// AUTH 1-2 (mechanism, base64 initial response or "="), LIST/UIDL 0-1,
/// RETR/DELE 1, TOP 2, LANG 0-1, the rest 0. Message numbers are decimal
/// and at least 1; TOP's line count may be 0.
error_code encode_command(std::string& out, command_kind kind,
                          std::span<const std::string_view> args,
                          const encode_options& options = {});

error_code encode_command(std::string& out, command_kind kind,
                          std::initializer_list<std::string_view> args = {},
                          const encode_options& options = {});

/// LIST n, UIDL n, RETR n, DELE n.
error_code encode_command(std::string& out, command_kind kind, std::uint64_t message);

/// TOP n lines.
error_code encode_top(std::string& out, std::uint64_t message, std::uint64_t lines);

/// One AUTH continuation line: base64 (may be empty) or "*" to cancel.
error_code encode_sasl_response(std::string& out, std::string_view base64);

/// True for strict base64 (RFC 4648 alphabet, padding only at the end).
bool is_base64(std::string_view s) noexcept;

}  // namespace pop3

#endif
