#ifndef POP3_LIB_SESSION_REQUESTS_HPP
#define POP3_LIB_SESSION_REQUESTS_HPP

// What the engine keeps per command: how to turn its reply into a result,
// and the user's type-erased completion handler. Not installed.

#include <pop3/detail/session_impl.hpp>
#include <pop3/line_reader.hpp>
#include <pop3/status_line.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <memory>
#include <tuple>

namespace pop3::detail {

class engine;

/// Moves a handler into `target`. Boost 1.81's move assignment of
/// any_completion_handler recurses without end (it converts from an lvalue
/// of its own type), so every assignment goes through construction + swap.
template <class Handler>
void assign_handler(Handler& target, Handler&& source) noexcept {
    Handler(std::move(source)).swap(target);
}

/// Completes a user's handler: its cancellation slot is released first (the
/// operation is over, a later emit must find nothing), then the call is
/// posted, never made inline: a handler may start new operations.
template <class Handler, class... Args>
void complete_posted(const boost::asio::any_io_executor& ex, Handler h, Args&&... args) {
    auto slot = h.get_cancellation_slot();
    if (slot.is_connected()) slot.clear();
    boost::asio::post(ex, boost::asio::append(std::move(h), std::forward<Args>(args)...));
}

/// Makes the completion an asynchronous sink calls once it has stored a
/// chunk. Made only when a sink is asynchronous: a synchronous sink (the
/// common case) costs no allocation per chunk.
class resume_fn {
public:
    using handler_type = boost::asio::any_completion_handler<void(error_code)>;
    template <class Maker>
    explicit resume_fn(Maker& m) noexcept
        : ctx_(&m), make_([](void* c) { return (*static_cast<Maker*>(c))(); }) {}
    handler_type make() const { return make_(ctx_); }

private:
    void* ctx_;
    handler_type (*make_)(void*);
};

struct request {
    command_kind kind = command_kind::noop;
    bool greeting = false;
    /// The group cancellation acts on: a batch's sub-requests share it.
    const void* group = nullptr;
    diagnostics* diag = nullptr;
    status_indicator indicator = status_indicator::ok;
    error_code body_error;  ///< refused or malformed body: the rest is dropped

    virtual ~request() = default;
    /// The status line arrived; -ERR texts go to diag here.
    virtual void on_status(engine&, const status_line& s) {
        indicator = s.indicator;
        if (!s.ok() && diag != nullptr) diag->assign_server(s.code, s.text);
    }
    /// A body chunk; returns true when an asynchronous sink took it and
    /// will call `resume`.
    virtual bool on_body(engine&, std::string_view, const resume_fn&) { return false; }
    /// The reply is complete.
    virtual void on_end(engine&) = 0;
    /// Completes the request with an error (fatal error, cancellation,
    /// refusal at admission). Safe to call when already complete.
    virtual void fail(error_code ec) = 0;
    virtual bool complete() const noexcept = 0;
    /// The user's cancellation slot, to connect to the engine.
    virtual boost::asio::cancellation_slot slot() = 0;

    bool ok() const noexcept { return indicator == status_indicator::ok; }
};

/// A request that completes one handler with `void(error_code, T...)`.
template <class... T>
struct typed_request : request {
    handler<T...> h;
    boost::asio::any_io_executor ex;

    void finish(error_code ec, T... values) {
        if (h) complete_posted(ex, std::move(h), ec, std::move(values)...);
    }
    void fail(error_code ec) override { finish(ec, T{}...); }
    bool complete() const noexcept override { return !h; }
    boost::asio::cancellation_slot slot() override { return h.get_cancellation_slot(); }

    /// server_refused after -ERR, else the body's error, else none.
    error_code outcome() const noexcept {
        if (!ok()) return error::server_refused;
        return body_error;
    }
};

}  // namespace pop3::detail

#endif
