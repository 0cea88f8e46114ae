#ifndef POP3_POLLER_HPP
#define POP3_POLLER_HPP

// pop3::poller: many maildrops polled concurrently from one io_context.
//
// Each account is polled in its own session: connect (with its TLS policy),
// CAPA, authenticate, LIST + UIDL, then its messages fetched pipelined and
// handed to the application, which commits each one when it is durably
// stored; only committed messages are deleted (DELE, then QUIT). Limits: at
// most max_sessions sessions at once, max_sessions_per_host per host, and
// max_bytes_in_flight octets of messages fetched but not yet committed,
// across all sessions (memory stays bounded whatever the accounts hold).
// Accounts start in the order added; one whose host is at its cap waits
// without holding up the others.
//
// Failures are retried by what the server said: [LOGIN-DELAY] after the
// delay CAPA advertised, [IN-USE] and [SYS/TEMP] and network errors with
// jittered exponential backoff; [AUTH], [SYS/PERM], other refusals and
// configuration errors (no TLS, no mechanism) are not retried. Every retry is
// in the account's outcome. A session that times out on a command sent
// behind another turns pipelining off for the account's later sessions.
//
// All the poller's work, its sessions included, runs on the executor it is
// given. As with any Asio object: when several threads run the io_context,
// give it a strand (asio::make_strand(ioc)); one thread needs none.

#include <pop3/body_sink.hpp>
#include <pop3/diagnostics.hpp>
#include <pop3/sasl.hpp>
#include <pop3/session_options.hpp>
#include <pop3/tls_session_cache.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pop3 {

struct account {
    std::string id;  ///< names the account in outcomes and events, e.g. "alice@mail.example.org"
    std::string host;
    std::string port;
    session_options options;  ///< transport, TLS policy, timeouts, pipeline depth
    credentials creds;
    bool keep = false;  ///< leave messages on the server: no DELE
    /// Which messages to fetch, given the listing (number, size, UID); all
    /// of them when unset. Keep mode uses it to skip UIDs seen before.
    std::function<std::vector<std::uint64_t>(const std::vector<message_info>&)> select;
    /// Delete mode: messages to delete without fetching them, given the
    /// listing: ones the application stored durably in an earlier run that
    /// ended before its QUIT. They must not be among those `select` picks.
    std::function<std::vector<std::uint64_t>(const std::vector<message_info>&)> already_stored;
};

/// What the application does with each message. Both run on the poller's
/// executor and must not block.
struct message_handler {
    /// Where the message goes; called when its +OK arrives.
    std::function<body_sink(const account&, const message_info&)> open;
    /// Called once per message: `ec` is empty when it arrived whole. Call
    /// `committed` once it is durably stored (or with an error to refuse
    /// it), on the poller's executor (its associated executor); only a
    /// message committed without error is deleted. The account's later
    /// messages go on arriving meanwhile, within max_bytes_in_flight.
    std::function<void(const account&, const message_info&, error_code ec,
                       boost::asio::any_completion_handler<void(error_code)> committed)>
        done;
};

/// A failed attempt that was retried.
struct retry_record {
    error_code ec;
    response_code code;
    std::string server_message;
    std::chrono::milliseconds delay{};  ///< waited before the next attempt
};

struct account_outcome {
    std::string account_id;
    error_code ec;     ///< none when the account was polled to the end
    diagnostics diag;  ///< the server's text and code for ec
    std::uint64_t messages = 0;         ///< fetched and committed
    std::uint64_t bytes = 0;            ///< octets of those
    std::uint64_t deleted = 0;          ///< deleted by the server at QUIT
    std::uint64_t failed_messages = 0;  ///< -ERR, over the size cap, or refused by the handler
                                        ///< (one cut by a broken session is not: `ec` or a retry covers it)
    /// Messages delivered whole whose size differed from what LIST said
    /// (a warning: a server that counts line endings its own way, or lies).
    std::uint64_t size_mismatches = 0;
    /// A session timed out waiting for a command it had sent behind
    /// another, so every later session of the account runs lock-step
    /// (depth 1): a server that advertises PIPELINING without doing it.
    bool pipelining_off = false;
    std::uint64_t attempts = 0;
    std::chrono::milliseconds elapsed{};  ///< from the first connect to the end
    std::vector<retry_record> retries;
};

enum class poll_event_kind { session_started, logged_in, message_committed, retry_scheduled, account_done };

/// A progress event, for a UI.
struct poll_event {
    poll_event_kind kind;
    const account* acct = nullptr;
    std::uint64_t message = 0;  ///< for message_committed
    std::uint64_t octets = 0;   ///< for message_committed
};

struct retry_policy {
    unsigned max_attempts = 3;  ///< attempts in all, the first included
    std::chrono::milliseconds base{1000};
    std::chrono::milliseconds max{60000};
    double jitter = 0.5;  ///< each delay is scaled by a random factor in [1 - jitter, 1]
    std::uint64_t seed = 0x706f7033;
};

struct poller_options {
    std::size_t max_sessions = 256;
    std::size_t max_sessions_per_host = 32;  ///< 0: no per-host cap
    std::uint64_t max_bytes_in_flight = 64u << 20;
    retry_policy retry;
    /// TLS sessions kept for resumption, shared by every session of the
    /// poller whose account options give no cache of their own: the second
    /// and later logins to a server skip its certificate chain and
    /// signature. Null: every handshake is full.
    std::shared_ptr<tls_session_cache> tls_sessions = std::make_shared<tls_session_cache>();
    std::function<void(const account_outcome&)> on_account_done;
    std::function<void(const poll_event&)> on_event;
};

/// What the poller has seen, for tests and dashboards.
struct poller_stats {
    std::size_t active_sessions = 0;
    std::size_t peak_sessions = 0;
    std::size_t peak_sessions_one_host = 0;
    std::uint64_t bytes_in_flight = 0;
    std::uint64_t peak_bytes_in_flight = 0;
    std::uint64_t accounts_done = 0;
};

namespace detail {
class poller_impl;
}

class poller {
public:
    poller(boost::asio::any_io_executor ex, message_handler handler, poller_options options = {});
    ~poller();
    poller(const poller&) = delete;
    poller& operator=(const poller&) = delete;

    /// Adds an account; before a run, or during one (it joins the queue).
    void add(account a);

    /// Polls every account once, each until done or out of retries.
    /// Completion: void(error_code): none, or operation_aborted after stop().
    template <class Token>
    auto async_run(Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [](auto h, detail::poller_impl* p) { start(p, std::chrono::milliseconds(0), std::move(h)); }, token,
            impl_.get());
    }

    /// Service mode: polls every account again every `interval` (each
    /// account with its own jitter, and never sooner than the LOGIN-DELAY
    /// its server advertised) until stop(). Completion: void(error_code).
    template <class Token>
    auto async_serve(std::chrono::milliseconds interval, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [](auto h, detail::poller_impl* p, std::chrono::milliseconds i) { start(p, i, std::move(h)); }, token,
            impl_.get(), interval);
    }

    /// Graceful stop: no new session or message starts; each session
    /// finishes the message in hand (delivered and committed, or not
    /// started), then QUITs so its committed deletions take effect.
    void stop();

    poller_stats stats() const;

private:
    static void start(detail::poller_impl* p, std::chrono::milliseconds interval,
                      boost::asio::any_completion_handler<void(error_code)> h);
    std::shared_ptr<detail::poller_impl> impl_;
};

}  // namespace pop3

#endif
