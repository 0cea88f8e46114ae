#include <pop3/error.hpp>

#include <string>

namespace pop3 {
namespace {

const char* describe(error e) noexcept {
    switch (e) {
    case error::server_refused: return "the server answered -ERR";
    case error::argument_has_forbidden_char: return "a command argument contains CR, LF or NUL";
    case error::argument_has_space: return "a command argument contains a space";
    case error::argument_empty: return "a command argument is empty";
    case error::argument_too_long: return "a command argument is longer than 40 octets (RFC 1939)";
    case error::command_too_long: return "a command is longer than 255 octets (RFC 2449)";
    case error::wrong_argument_count: return "wrong number of arguments for the command";
    case error::invalid_message_number: return "message numbers start at 1";
    case error::invalid_sasl_response: return "a SASL response must be base64 or \"*\"";
    case error::status_line_too_long: return "the server's status line is over the length cap";
    case error::bad_status_indicator: return "the server's reply starts with neither +OK nor -ERR";
    case error::nul_in_status_line: return "the server's status line contains a NUL octet";
    case error::unexpected_continuation: return "the server sent a \"+ \" continuation where none is allowed";
    case error::eof_in_status_line: return "the connection ended inside a status line";
    case error::eof_in_body: return "the connection ended inside a multi-line reply";
    case error::body_too_large: return "a multi-line reply is over the size cap";
    case error::parser_not_started: return "reply bytes arrived where no reply was expected";
    case error::line_too_long: return "a line of a multi-line reply is over the length cap";
    case error::too_many_capabilities: return "the CAPA reply has more lines than the cap";
    case error::not_a_number: return "a number in the reply is not decimal";
    case error::negative_number: return "a number in the reply is negative";
    case error::number_too_large: return "a number in the reply does not fit in 64 bits";
    case error::bad_listing_line: return "a STAT, LIST or UIDL line has the wrong shape";
    case error::uid_too_long: return "a UID is longer than 70 octets";
    case error::uid_bad_char: return "a UID contains an octet outside 0x21-0x7E";
    case error::uid_empty: return "a UIDL line has no UID";
    case error::no_apop_timestamp: return "the greeting has no APOP timestamp of the form <...@...>";
    case error::headers_too_large: return "the header block is over the size or field cap";
    case error::wrong_state: return "the command is not allowed in the session's current state";
    case error::plaintext_auth_refused: return "refusing to send a password over an unencrypted connection";
    case error::not_connected: return "the session is not connected";
    case error::message_too_large: return "the message is over the size cap";
    case error::timeout: return "the server did not answer in time";
    case error::session_failed: return "the session ended after an earlier fatal error";
    case error::unexpected_data: return "the server sent data no command asked for";
    case error::connection_closed: return "the server closed the connection";
    case error::tls_required: return "TLS is required but the server does not offer it (no STLS)";
    case error::mechanism_not_offered: return "the server does not offer the authentication mechanism asked for";
    case error::sasl_bad_challenge: return "the server's SASL challenge is malformed";
    case error::server_signature_mismatch: return "the server failed to prove it knows the password (SCRAM)";
    case error::stls_injection: return "data followed the server's STLS reply before TLS began (injection)";
    case error::certificate_pin_mismatch: return "the server's public key matches no pinned key";
    case error::too_many_entries: return "a LIST or UIDL reply has more entries than the cap";
    case error::duplicate_message_number: return "a LIST or UIDL reply names one message twice";
    case error::reply_out_of_step:
        return "a message began with a POP3 status line: the server's replies are out of step with the commands";
    }
    return "unknown pop3 error";
}

class pop3_category final : public boost::system::error_category {
public:
    // A fixed id makes codes compare equal across shared-library boundaries.
    pop3_category() noexcept : boost::system::error_category(0x706f70335f657272ULL) {}
    const char* name() const noexcept override { return "pop3"; }
    std::string message(int ev) const override { return describe(static_cast<error>(ev)); }
    char const* message(int ev, char* buffer, std::size_t len) const noexcept override {
        // describe() returns static strings; the buffer is not needed.
        (void)buffer;
        (void)len;
        return describe(static_cast<error>(ev));
    }
};

}  // namespace

const boost::system::error_category& category() noexcept {
    static const pop3_category instance;
    return instance;
}

error_class classify(const error_code& ec) noexcept {
    if (!ec) return error_class::none;
    if (ec.category() != category()) return error_class::stream_unusable;
    switch (static_cast<error>(ec.value())) {
    case error::server_refused:
        return error_class::server_refused;
    case error::argument_has_forbidden_char:
    case error::argument_has_space:
    case error::argument_empty:
    case error::argument_too_long:
    case error::command_too_long:
    case error::wrong_argument_count:
    case error::invalid_message_number:
    case error::invalid_sasl_response:
    case error::wrong_state:
    case error::plaintext_auth_refused:
    case error::mechanism_not_offered:
        return error_class::usage;
    case error::sasl_bad_challenge:
        return error_class::malformed_reply;
    case error::line_too_long:
    case error::too_many_capabilities:
    case error::not_a_number:
    case error::negative_number:
    case error::number_too_large:
    case error::bad_listing_line:
    case error::uid_too_long:
    case error::uid_bad_char:
    case error::uid_empty:
    case error::no_apop_timestamp:
    case error::headers_too_large:
    case error::message_too_large:
    case error::too_many_entries:
    case error::duplicate_message_number:
        return error_class::malformed_reply;
    case error::status_line_too_long:
    case error::bad_status_indicator:
    case error::nul_in_status_line:
    case error::unexpected_continuation:
    case error::eof_in_status_line:
    case error::eof_in_body:
    case error::body_too_large:
    case error::parser_not_started:
    case error::not_connected:
    case error::timeout:
    case error::session_failed:
    case error::unexpected_data:
    case error::connection_closed:
    case error::tls_required:
    case error::server_signature_mismatch:
    case error::stls_injection:
    case error::certificate_pin_mismatch:
    case error::reply_out_of_step:
        return error_class::stream_unusable;
    }
    return error_class::stream_unusable;
}

}  // namespace pop3
