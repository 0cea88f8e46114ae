#ifndef POP3_SESSION_HPP
#define POP3_SESSION_HPP

// pop3::session: one POP3 connection, AUTHORIZATION -> TRANSACTION ->
// UPDATE, over plain TCP, TLS, or any Asio stream the user brings.
//
// Every operation takes any Asio completion token (a callback,
// asio::use_awaitable, asio::deferred, asio::use_future, ...). Operations
// may be started while others are pending: they are queued and pipelined
// (up to pipeline_depth() commands in flight) and complete in order.
//
// Errors: an operation completes with error::server_refused when the server
// answered -ERR (its text and response code go to the optional diagnostics
// argument) and the session goes on; a usage error (bad argument, wrong
// state, plaintext password refused) is reported with nothing written; a
// fatal error (is_fatal(ec)) ends the session: every pending operation
// completes with it, and later ones with error::session_failed.
//
// Cancellation: every operation supports terminal, partial and total
// cancellation through the token's cancellation slot. A command not yet
// written is removed; one already written is abandoned: the operation
// completes at once with asio::error::operation_aborted and its reply is
// read and dropped, so the session stays usable. Cancelling async_connect
// ends the session.
//
// Timeouts (session_options): connect_timeout covers resolve, connect, TLS
// handshake and greeting; reply_timeout is the longest the server may stay
// silent while a reply is expected; session_timeout bounds the whole
// session. Each ends the session with error::timeout: a reply cut in the
// middle never leaks into the next command.
//
// Thread safety: like an Asio socket. Start operations from one thread at
// a time (the executor's thread, or a strand). The object must outlive its
// operations; destroying it ends the session and completes them.
//
// Every operation takes an optional trailing `diagnostics*`: on -ERR it
// receives the server's text and response code. It, and any sink, must
// outlive the operation.

#include <pop3/body_sink.hpp>
#include <pop3/capabilities.hpp>
#include <pop3/detail/any_stream.hpp>
#include <pop3/detail/session_impl.hpp>
#include <pop3/diagnostics.hpp>
#include <pop3/error.hpp>
#include <pop3/listing.hpp>
#include <pop3/sasl.hpp>
#include <pop3/session_options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution_context.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pop3 {

class session {
public:
    using executor_type = boost::asio::any_io_executor;

    /// A session that connects with async_connect.
    explicit session(executor_type ex, session_options options = {})
        : core_(std::move(ex), std::move(options)) {}

    template <class ExecutionContext>
        requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
    explicit session(ExecutionContext& ctx, session_options options = {})
        : session(ctx.get_executor(), std::move(options)) {}

    /// A session over a stream the caller has already connected (TCP,
    /// beast::tcp_stream, asio::ssl::stream after its handshake, a test
    /// stream...). Start it with async_greeting.
    template <class AsyncStream>
    static session over(AsyncStream stream, session_options options = {}) {
        return session(std::make_unique<detail::stream_adapter<AsyncStream>>(std::move(stream)),
                       std::move(options));
    }

    session(session&&) noexcept = default;
    session& operator=(session&&) noexcept = default;

    executor_type get_executor() const noexcept { return core_.get_executor(); }

    /// Resolves, connects (TLS too with transport::implicit_tls) and reads
    /// the greeting. On a plain connection it then applies the TLS policy
    /// (session_options::tls): CAPA, STLS, and CAPA again over TLS; with
    /// tls_policy::required a server without STLS ends the session with
    /// error::tls_required. Completion: void(error_code).
    template <class Token>
    auto async_connect(std::string host, std::string port, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::string host, std::string port, diagnostics* d) {
                c->connect(std::move(host), std::move(port), d, std::move(h));
            },
            std::move(host), std::move(port), diag);
    }

    /// STLS by hand (async_connect does it by policy): upgrades the
    /// connection to TLS, with the certificate checks of session_options.
    /// Bytes sent after the server's +OK and before TLS end the session
    /// (error::stls_injection). The capabilities learned before are
    /// forgotten: ask CAPA again. Completion: void(error_code).
    template <class Token>
    auto async_starttls(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->starttls(d, std::move(h)); }, diag);
    }

    /// Logs in with the strongest mechanism both sides have, or the one
    /// credentials::mechanism names (never a silent fallback). Secrets in
    /// cleartext only over TLS unless allow_plaintext_auth. Choose after
    /// async_capa. Completion: void(error_code).
    template <class Token>
    auto async_authenticate(credentials creds, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, credentials cr, diagnostics* d) {
                c->authenticate(std::move(cr), d, std::move(h));
            },
            std::move(creds), diag);
    }

    /// UTF8 (RFC 6856): user names, passwords and texts in UTF-8, before
    /// login. Completion: void(error_code).
    template <class Token>
    auto async_utf8(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->utf8(d, std::move(h)); }, diag);
    }

    /// LANG tag (RFC 6856): the language of the server's texts.
    /// Completion: void(error_code).
    template <class Token>
    auto async_lang(std::string tag, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::string t, diagnostics* d) {
                c->lang(std::move(t), d, std::move(h));
            },
            std::move(tag), diag);
    }

    /// LANG without an argument: the languages offered, one per entry.
    /// Completion: void(error_code, std::vector<std::string>).
    template <class Token>
    auto async_lang_list(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::vector<std::string>)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->lang_list(d, std::move(h)); }, diag);
    }

    /// Reads the greeting on a stream given to over(). Completion: void(error_code).
    template <class Token>
    auto async_greeting(Token&& token) {
        return initiate<void(error_code)>(std::forward<Token>(token),
                                          [](auto h, detail::session_core* c) { c->greeting(std::move(h)); });
    }

    /// CAPA. Completion: void(error_code, capabilities). Sets the automatic
    /// pipeline depth from PIPELINING.
    template <class Token>
    auto async_capa(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, capabilities)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->capa(d, std::move(h)); }, diag);
    }

    /// USER and PASS. Refused with error::plaintext_auth_refused, nothing
    /// sent, on a connection without TLS unless allow_plaintext_auth is set.
    /// Completion: void(error_code).
    template <class Token>
    auto async_login(std::string user, std::string password, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::string u, std::string p, diagnostics* d) {
                c->login(std::move(u), std::move(p), d, std::move(h));
            },
            std::move(user), std::move(password), diag);
    }

    /// APOP with the greeting's timestamp (error::no_apop_timestamp when the
    /// greeting has none in msg-id form). Completion: void(error_code).
    template <class Token>
    auto async_apop(std::string user, std::string secret, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::string u, std::string s, diagnostics* d) {
                c->apop(std::move(u), std::move(s), d, std::move(h));
            },
            std::move(user), std::move(secret), diag);
    }

    /// STAT. Completion: void(error_code, stat_info).
    template <class Token>
    auto async_stat(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, stat_info)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->stat(d, std::move(h)); }, diag);
    }

    /// LIST. Completion: void(error_code, std::vector<list_entry>).
    template <class Token>
    auto async_list(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::vector<list_entry>)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->list(d, std::move(h)); }, diag);
    }

    /// LIST n. Completion: void(error_code, list_entry).
    template <class Token>
    auto async_list(std::uint64_t n, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, list_entry)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::uint64_t n, diagnostics* d) {
                c->list_one(n, d, std::move(h));
            },
            n, diag);
    }

    /// UIDL. Completion: void(error_code, std::vector<uidl_entry>).
    template <class Token>
    auto async_uidl(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::vector<uidl_entry>)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->uidl(d, std::move(h)); }, diag);
    }

    /// UIDL n. Completion: void(error_code, uidl_entry).
    template <class Token>
    auto async_uidl(std::uint64_t n, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, uidl_entry)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::uint64_t n, diagnostics* d) {
                c->uidl_one(n, d, std::move(h));
            },
            n, diag);
    }

    /// LIST and UIDL pipelined together, merged by message number.
    /// Completion: void(error_code, std::vector<message_info>).
    template <class Token>
    auto async_list_uidl(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::vector<message_info>)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->list_uidl(d, std::move(h)); }, diag);
    }

    /// RETR n into a string, up to session_options::max_message_size.
    /// Completion: void(error_code, std::string).
    template <class Token>
    auto async_retr(std::uint64_t n, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::string)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::uint64_t n, diagnostics* d) { c->retr(n, d, std::move(h)); },
            n, diag);
    }

    /// RETR n streamed to a sink in bounded memory.
    /// Completion: void(error_code, std::uint64_t octets).
    template <class Token>
    auto async_retr(std::uint64_t n, body_sink sink, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::uint64_t)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::uint64_t n, body_sink s, diagnostics* d) {
                c->retr_to(n, std::move(s), d, std::move(h));
            },
            n, std::move(sink), diag);
    }

    /// TOP n lines: the header and the first `lines` lines of the body.
    /// Completion: void(error_code, std::string).
    template <class Token>
    auto async_top(std::uint64_t n, std::uint64_t lines, Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::string)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::uint64_t n, std::uint64_t l, diagnostics* d) {
                c->top(n, l, d, std::move(h));
            },
            n, lines, diag);
    }

    /// DELE n: marks a message; the server deletes it at QUIT. Completion: void(error_code).
    template <class Token>
    auto async_dele(std::uint64_t n, Token&& token, diagnostics* diag = nullptr) {
        return simple(command_kind::dele, n, std::forward<Token>(token), diag);
    }
    /// NOOP. Completion: void(error_code).
    template <class Token>
    auto async_noop(Token&& token, diagnostics* diag = nullptr) {
        return simple(command_kind::noop, 0, std::forward<Token>(token), diag);
    }
    /// RSET: unmarks every message. Completion: void(error_code).
    template <class Token>
    auto async_rset(Token&& token, diagnostics* diag = nullptr) {
        return simple(command_kind::rset, 0, std::forward<Token>(token), diag);
    }
    /// QUIT: in TRANSACTION the server commits deletions (UPDATE) and
    /// closes. Completion: void(error_code).
    template <class Token>
    auto async_quit(Token&& token, diagnostics* diag = nullptr) {
        return simple(command_kind::quit, 0, std::forward<Token>(token), diag);
    }

    /// LAST (RFC 1725, old servers): the highest message number accessed.
    /// Completion: void(error_code, std::uint64_t).
    template <class Token>
    auto async_last(Token&& token, diagnostics* diag = nullptr) {
        return initiate<void(error_code, std::uint64_t)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, diagnostics* d) { c->last(d, std::move(h)); }, diag);
    }

    /// RETR of many messages, pipelined. Each message's outcome goes to
    /// callbacks.done; a -ERR or a refusing sink affects only its message.
    /// Completion: void(error_code): a fatal error, or none.
    template <class Token>
    auto async_fetch(std::vector<std::uint64_t> numbers, fetch_callbacks callbacks, Token&& token) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::vector<std::uint64_t> n, fetch_callbacks cb) {
                c->fetch(std::move(n), std::move(cb), std::move(h));
            },
            std::move(numbers), std::move(callbacks));
    }

    /// RETR of the messages with these UIDs: UIDL, then a pipelined fetch.
    /// Completion: void(error_code, std::vector<std::string> missing): a
    /// fatal error or none, and the UIDs the server does not have.
    template <class Token>
    auto async_fetch_uids(std::vector<std::string> uids, fetch_callbacks callbacks, Token&& token) {
        return initiate<void(error_code, std::vector<std::string>)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::vector<std::string> u, fetch_callbacks cb) {
                c->fetch_uids(std::move(u), std::move(cb), std::move(h));
            },
            std::move(uids), std::move(callbacks));
    }

    /// DELE of many messages, pipelined. Completion: void(error_code,
    /// std::vector<error_code>): a fatal error or none, and each message's
    /// outcome in the order given.
    template <class Token>
    auto async_delete(std::vector<std::uint64_t> numbers, Token&& token) {
        return initiate<void(error_code, std::vector<error_code>)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, std::vector<std::uint64_t> n) {
                c->remove(std::move(n), std::move(h));
            },
            std::move(numbers));
    }

    session_state state() const noexcept { return core_.state(); }
    /// The last CAPA answer, or nullptr before one.
    const capabilities* server_capabilities() const noexcept { return core_.known_capabilities(); }
    /// The greeting's text after +OK.
    const std::string& greeting() const noexcept { return core_.greeting_text(); }
    std::size_t pipeline_depth() const noexcept { return core_.pipeline_depth(); }
    bool is_encrypted() const noexcept { return core_.encrypted(); }
    /// True when the TLS handshake resumed a session from
    /// session_options::tls_session_cache (no certificate was sent).
    bool tls_resumed() const noexcept { return core_.tls_resumed(); }
    /// The error that ended the session, if one did.
    error_code last_error() const noexcept { return core_.last_error(); }
    /// True when the session failed waiting for a command that was sent
    /// behind another unanswered one: after a timeout, the sign of a server
    /// that advertises PIPELINING and drops what follows the first command.
    bool failed_on_pipelined_command() const noexcept { return core_.failed_on_pipelined_command(); }
    /// Ends the session at once: the connection closes, pending operations
    /// complete with asio::error::operation_aborted.
    void close() noexcept { core_.close(); }

private:
    session(std::unique_ptr<detail::any_stream> stream, session_options options)
        : core_(std::move(stream), std::move(options)) {}

    template <class Signature, class Token, class Initiation, class... Args>
    auto initiate(Token&& token, Initiation init, Args&&... args) {
        return boost::asio::async_initiate<Token, Signature>(std::move(init), token, &core_,
                                                             std::forward<Args>(args)...);
    }

    template <class Token>
    auto simple(command_kind kind, std::uint64_t n, Token&& token, diagnostics* diag) {
        return initiate<void(error_code)>(
            std::forward<Token>(token),
            [](auto h, detail::session_core* c, command_kind k, std::uint64_t n, diagnostics* d) {
                c->simple(k, n, d, std::move(h));
            },
            kind, n, diag);
    }

    detail::session_core core_;
};

}  // namespace pop3

#endif
