#ifndef POP3_BODY_SINK_HPP
#define POP3_BODY_SINK_HPP

// Where a streamed message body goes, chunk by chunk, in bounded memory.

#include <pop3/diagnostics.hpp>
#include <pop3/error.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace pop3 {

/// Receives the unstuffed body of one message in order, line endings as the
/// server sent them. Set one of the two members:
///
/// - `write`: synchronous; returns an error to refuse the message.
/// - `async_write`: asynchronous; calls `done` when the chunk is stored.
///   Until then the session reads nothing more, so a slow sink slows the
///   socket down instead of filling memory (back-pressure). Call `done` on
///   the session's executor; a sink that took the chunk at once may call it
///   before returning, and the session then goes on with no trip through
///   the executor (a sink that buffers small messages and hands large ones
///   to a thread pool pays for the hand-off only when it makes one).
///
/// A chunk is only valid during the call (or until `done`). A refused
/// message is read to its end and dropped; the operation then completes
/// with the sink's error and the session stays usable.
struct body_sink {
    std::function<error_code(std::string_view chunk)> write;
    std::function<void(std::string_view chunk,
                       boost::asio::any_completion_handler<void(error_code)> done)>
        async_write;
};

/// A message as LIST and UIDL describe it together.
struct message_info {
    std::uint64_t number = 0;
    std::uint64_t octets = 0;  ///< 0 when the session has not seen LIST for it
    std::string uid;           ///< empty when the session has not seen UIDL for it
};

/// For async_fetch and async_fetch_uids: the sink of each message and its
/// outcome. Both run on the session's executor and may start operations.
struct fetch_callbacks {
    /// Called when a message's +OK arrives; returns where its body goes.
    std::function<body_sink(const message_info& message)> open;
    /// Called once per message, in order: no error when the body was stored
    /// whole; server_refused (see diagnostics) on -ERR; the sink's error if
    /// it refused; the fatal error if the session broke during the batch.
    /// With no error, `diag.client_message()` is empty unless there is a
    /// warning: the message arrived whole but not at the size LIST gave.
    std::function<void(const message_info& message, error_code ec, const diagnostics& diag)> done;
};

}  // namespace pop3

#endif
