#ifndef POP3_REPLY_PARSER_HPP
#define POP3_REPLY_PARSER_HPP

// An incremental POP3 reply parser with no I/O. It is fed whatever bytes the
// caller has, in any chunking, and consumes exactly the bytes of one reply:
// what follows the reply belongs to the next one in a pipeline.
//
// Line-ending policy (one for status lines and bodies alike): a line ends at
// LF; a CR just before it belongs to the line ending. A bare LF therefore ends
// a line, and ".\n" at the start of a line ends a body. A CR not followed by
// LF, and NUL, are ordinary body octets and are kept byte-exact. Bodies are
// handed out with their line endings as received and with the stuffing dot
// of RFC 1939 section 3 removed.

#include <pop3/command.hpp>
#include <pop3/error.hpp>
#include <pop3/limits.hpp>
#include <pop3/status_line.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pop3 {

enum class parse_event {
    need_more,  ///< every byte given was used (or is kept in the caller's buffer); feed more
    status,     ///< status() holds the status line; done() says whether a body follows
    body,       ///< `body` holds a piece of the unstuffed body
    done,       ///< the body's terminating line was consumed; the reply is complete
};

struct parse_result {
    parse_event event = parse_event::need_more;
    /// Bytes of the input that are used up; the caller drops them from its
    /// buffer after handling the event (body views point into them).
    std::size_t consumed = 0;
    /// For parse_event::body: unstuffed octets, a view into the input (or,
    /// rarely, into static storage). Empty otherwise.
    std::string_view body;
};

class reply_parser {
public:
    explicit reply_parser(const parser_limits& limits = {}) noexcept : limits_(limits) {}

    /// Expects a new reply of the given shape. Call it once per command, in
    /// command order.
    void start(reply_shape shape) noexcept;

    /// Parses the start of `input`. Returns one event at a time; on error
    /// `ec` is set and the parser must not be used until start() again (the
    /// stream is unusable: is_fatal(ec) is true).
    ///
    /// A status line is only parsed when its LF is in `input`; until then the
    /// result is need_more with consumed 0 and the bytes stay in the caller's
    /// buffer. Body octets are never held back: they come out as soon as
    /// they are known not to be stuffing or part of the terminator.
    parse_result parse(std::string_view input, error_code& ec);

    /// As parse(), events and consumed counts alike, but a body comes out in
    /// fewer pieces: the body lines `input` holds are handed out as one view,
    /// moved together over the stuffing dots between them (each octet moved
    /// at most once, within the consumed part of `input`, which the view
    /// points into). parse() cuts the body at every stuffed line; for a
    /// caller that owns its buffer this spares a sink call per such line.
    parse_result parse_in_place(char* input, std::size_t size, error_code& ec);

    /// To be called when the stream ends. Returns the error for a reply cut
    /// short (eof_in_status_line, eof_in_body), or no error when no reply is
    /// in progress.
    error_code on_eof() const noexcept;

    /// The status line of the current reply, valid after parse_event::status
    /// until the next start().
    const status_line& status() const noexcept { return status_; }

    /// True when no reply is in progress: before the first start(), and once
    /// the current reply is complete.
    bool done() const noexcept { return state_ == state::idle; }

    /// Unstuffed body octets of the current reply handed out so far.
    std::uint64_t body_size() const noexcept { return body_size_; }

    const parser_limits& limits() const noexcept { return limits_; }

private:
    enum class state : unsigned char {
        idle,        // no reply expected
        status,      // waiting for the status line
        line_start,  // at the first octet of a body line
        in_line,     // inside a body line
        dot,         // a line started with '.', consumed
        dot_cr,      // ".\r" at the start of a line, consumed
        failed,      // an error was returned
    };

    parse_result parse_status(std::string_view input, error_code& ec);
    parse_result parse_body(std::string_view input, error_code& ec) noexcept;
    parse_result gather_body(char* data, std::size_t n, error_code& ec) noexcept;
    parse_result emit_body(std::string_view chunk, std::size_t consumed, error_code& ec) noexcept;

    parser_limits limits_;
    reply_shape shape_ = reply_shape::single_line;
    state state_ = state::idle;
    std::size_t scanned_ = 0;  // status-line octets already searched for LF
    std::uint64_t body_size_ = 0;
    status_line status_;
};

}  // namespace pop3

#endif
