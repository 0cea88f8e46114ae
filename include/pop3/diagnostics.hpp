#ifndef POP3_DIAGNOSTICS_HPP
#define POP3_DIAGNOSTICS_HPP

#include <pop3/response_code.hpp>

#include <string>
#include <string_view>

namespace pop3 {

/// What goes with an error code: the server's own words kept apart from the
/// library's. Operations fill it when they fail; it is empty on success.
class diagnostics {
public:
    /// The server's text after -ERR and the response code. It is server
    /// data: it may hold any octet but CR and LF. Use printable() to log it.
    const std::string& server_message() const noexcept { return server_message_; }

    /// The server's response code; kind none when it sent none.
    const response_code& code() const noexcept { return code_; }

    /// Extra detail from the library (which command, which line), or empty.
    const std::string& client_message() const noexcept { return client_message_; }

    void assign_server(const response_code& code, std::string_view message) {
        code_ = code;
        server_message_.assign(message);
    }
    void assign_client(std::string_view message) { client_message_.assign(message); }
    void clear() noexcept {
        code_ = {};
        server_message_.clear();
        client_message_.clear();
    }

private:
    response_code code_;
    std::string server_message_;
    std::string client_message_;
};

/// Server text made safe for a log line or a terminal: printable ASCII and
/// well-formed UTF-8 pass; every other octet becomes \xNN; the result is cut
/// at `max` octets with "..." appended.
std::string printable(std::string_view server_text, std::size_t max = 1024);

}  // namespace pop3

#endif
