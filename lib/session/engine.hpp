#ifndef POP3_LIB_SESSION_ENGINE_HPP
#define POP3_LIB_SESSION_ENGINE_HPP

// The session engine: a thin driver that moves bytes between one stream and
// the protocol core (pipeline + reply_parser). Not installed.
//
// Two loops run while commands are pending, one writing what the pipeline
// admitted and one reading replies, so that a server that answers before it
// has read every command never deadlocks us (RFC 2449 section 6.6). When
// nothing is pending no operation is outstanding and the read buffer is
// released: an idle session holds a socket and a few hundred bytes.

#include "read_buffer.hpp"
#include "requests.hpp"

#include <pop3/pipeline.hpp>
#include <pop3/reply_parser.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <unordered_map>
#include <vector>

namespace pop3::detail {

class engine : public std::enable_shared_from_this<engine> {
public:
    using clock = std::chrono::steady_clock;

    engine(boost::asio::any_io_executor ex, session_options options);

    // Operations (called by session_core).
    void connect(std::string host, std::string port, diagnostics* d, handler<> h);
    void start_greeting(handler<> h);
    /// Queues a request with its encoded command (wire) and reply shape.
    void submit(std::unique_ptr<request> r, std::string wire, reply_shape shape, bool barrier,
                std::uint64_t expected_reply = 0);
    /// Queues a request ahead of every waiting one (a SASL continuation).
    void submit_front(std::unique_ptr<request> r, std::string wire, reply_shape shape);
    /// Completes a request that never reaches the pipeline (usage error).
    void reject(request& r, error_code ec);
    /// After STLS +OK: checks that nothing followed the reply (injection),
    /// upgrades the stream to TLS, verifies it, and completes `h`.
    void begin_tls(handler<> h);
    /// Ends the session with `ec` (a policy failure decided above the engine).
    void abort(error_code ec) { fail_session(ec); }
    void close() noexcept;

    // Used by requests when their reply ends.
    void on_greeted(const std::string& text, bool ok);
    void on_logged_in();
    void on_quit();
    void on_capabilities(const capabilities& caps);
    void remember_size(std::uint64_t number, std::uint64_t octets);
    std::uint64_t expected_size(std::uint64_t number) const;
    void remember_uid(std::uint64_t number, const std::string& uid);
    /// What the session knows of a message from LIST and UIDL.
    message_info known(std::uint64_t number) const;

    boost::asio::any_io_executor executor() const noexcept { return ex_; }
    const session_options& options() const noexcept { return options_; }
    session_state state() const noexcept { return state_; }
    error_code last_error() const noexcept { return failure_; }
    bool failed_on_pipelined_command() const noexcept { return failed_on_pipelined_; }
    const std::optional<capabilities>& caps() const noexcept { return caps_; }
    const std::string& greeting() const noexcept { return greeting_; }
    std::size_t depth() const noexcept { return pipe_.depth(); }
    bool encrypted() const noexcept { return stream_ && stream_->encrypted(); }
    bool tls_resumed() const noexcept;
    bool has_apop_timestamp() const noexcept;
    void adopt_stream(std::unique_ptr<any_stream> stream) { stream_ = std::move(stream); }

private:
    using entry = pipelined_command<std::unique_ptr<request>>;

    void install_cancellation(request& r);
    void cancel_group(const void* group);
    bool allowed(const request& r) const noexcept;
    void pump();
    void schedule_pump();
    void admit();
    void start_write();
    void start_read();
    void process();
    void finish_front();
    void on_io_error(error_code ec, bool reading);
    void fail_session(error_code ec);
    void connect_done(error_code ec);
    void touch() { last_activity_ = clock::now(); }
    void update_low_water();
    void set_low_water(std::size_t octets);
    void arm_timer();
    void disarm_timer();
    void on_timer();
    clock::time_point next_deadline() const;
    bool busy() const noexcept;
    void release_buffers();

    boost::asio::any_io_executor ex_;
    session_options options_;
    std::unique_ptr<any_stream> stream_;
    pipeline<std::unique_ptr<request>> pipe_;
    reply_parser parser_;
    bool parser_active_ = false;
    // session_options::check_message_start: the first octets of a RETR or
    // TOP body, gathered until they can or cannot be a status line.
    bool probing_ = false;
    std::size_t probe_len_ = 0;
    char probe_[5] = {};
    error_code probe_message_start(std::string_view chunk);

    static constexpr std::size_t initial_read_chunk = 4096;
    read_buffer rbuf_;
    std::size_t read_chunk_ = initial_read_chunk;
    std::size_t rbeg_ = 0;
    std::size_t rend_ = 0;
    bool reading_ = false;
    bool writing_ = false;
    error_code read_error_;  // from read_buffered: for the next start_read
    // The read low-water mark (session_options::read_low_water): the mark
    // set on the socket, and whether it is off for good (a server that
    // sent less than it said).
    std::size_t low_water_ = 1;
    bool low_water_off_ = false;
    static constexpr std::chrono::milliseconds low_water_grace{10};
    bool sink_busy_ = false;
    // While an asynchronous sink's async_write runs: a `done` called before
    // it returns lands here, and the parse goes on in the same loop.
    bool in_sink_call_ = false;
    bool sink_done_inline_ = false;
    error_code sink_inline_ec_;
    bool pumping_ = false;
    bool pump_posted_ = false;
    bool repump_ = false;
    std::uint64_t generation_ = 0;  // bumped on failure: late callbacks are ignored

    session_state state_ = session_state::disconnected;
    error_code failure_;
    bool failed_on_pipelined_ = false;  // the oldest unanswered command had gone out behind another
    std::optional<capabilities> caps_;
    std::string greeting_;
    std::unordered_map<std::uint64_t, std::uint64_t> sizes_;  // from LIST, for the byte budget
    std::unordered_map<std::uint64_t, std::string> uids_;     // from UIDL, for fetch callbacks

    boost::asio::steady_timer timer_;
    bool timer_armed_ = false;
    std::uint64_t timer_generation_ = 0;
    bool timed_out_ = false;
    clock::time_point last_activity_{};
    clock::time_point session_deadline_ = clock::time_point::max();
    clock::time_point reply_deadline_ = clock::time_point::max();  // command_timeout for the reply being read
    clock::time_point connect_deadline_ = clock::time_point::max();
    clock::time_point handshake_deadline_ = clock::time_point::max();
    diagnostics* connect_diag_ = nullptr;
    bool connecting_ = false;
    bool upgrading_ = false;   // the STLS handshake is running
    std::string server_name_;  // what the certificate must name
    std::string port_;
    // With a tls_session_cache: the key the session is offered and stored
    // under, and whether the server's session is still to be stored (TLS
    // 1.3 sends it after the handshake: it is looked for after each read).
    std::string tls_key_;
    bool tls_store_pending_ = false;
    SSL* tls_handle() const noexcept;  // the stream's SSL when async_connect made it TLS
    void offer_tls_session(SSL* ssl);
    void after_handshake(error_code ec);
    void store_tls_session();
    std::unique_ptr<boost::asio::ip::tcp::resolver> resolver_;
    handler<> connect_handler_;
};

}  // namespace pop3::detail

#endif
