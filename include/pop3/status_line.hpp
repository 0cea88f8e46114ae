#ifndef POP3_STATUS_LINE_HPP
#define POP3_STATUS_LINE_HPP

#include <pop3/response_code.hpp>

#include <string>

namespace pop3 {

enum class status_indicator {
    ok,            ///< +OK
    err,           ///< -ERR
    continuation,  ///< "+ challenge" during AUTH (RFC 5034)
};

/// The first line of a reply, owned. For a continuation, `text` is the base64
/// challenge (possibly empty) and `code` is kind none.
struct status_line {
    status_indicator indicator = status_indicator::ok;
    response_code code;
    std::string text;  ///< what follows the indicator and the response code, without CRLF

    bool ok() const noexcept { return indicator == status_indicator::ok; }
};

}  // namespace pop3

#endif
