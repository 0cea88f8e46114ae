#ifndef POP3_DETAIL_SESSION_IMPL_HPP
#define POP3_DETAIL_SESSION_IMPL_HPP

// The compiled side of pop3::session. Every operation takes a type-erased
// completion handler; the public templates only wrap tokens into handlers.

#include <pop3/body_sink.hpp>
#include <pop3/capabilities.hpp>
#include <pop3/detail/any_stream.hpp>
#include <pop3/diagnostics.hpp>
#include <pop3/listing.hpp>
#include <pop3/sasl.hpp>
#include <pop3/session_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pop3 {

/// RFC 1939 states, plus the ends of a connection's life.
enum class session_state {
    disconnected,   ///< no connection yet
    authorization,  ///< greeted; log in next
    transaction,    ///< logged in
    update,         ///< QUIT answered: deletions committed, connection closed
    failed,         ///< a fatal error ended the session; see last_error()
};

namespace detail {

template <class... T>
using handler = boost::asio::any_completion_handler<void(error_code, T...)>;

class engine;

/// Owns the engine; the engine lives on while operations are pending.
class session_core {
public:
    session_core(boost::asio::any_io_executor ex, session_options options);
    session_core(std::unique_ptr<any_stream> stream, session_options options);
    ~session_core();
    session_core(session_core&&) noexcept;
    session_core& operator=(session_core&&) noexcept;

    boost::asio::any_io_executor get_executor() const noexcept;

    void connect(std::string host, std::string port, diagnostics* d, handler<> h);
    void starttls(diagnostics* d, handler<> h);
    void authenticate(credentials c, diagnostics* d, handler<> h);
    void utf8(diagnostics* d, handler<> h);
    void lang(std::string tag, diagnostics* d, handler<> h);
    void lang_list(diagnostics* d, handler<std::vector<std::string>> h);
    void greeting(handler<> h);
    void capa(diagnostics* d, handler<capabilities> h);
    void login(std::string user, std::string password, diagnostics* d, handler<> h);
    void apop(std::string user, std::string secret, diagnostics* d, handler<> h);
    void stat(diagnostics* d, handler<stat_info> h);
    void list(diagnostics* d, handler<std::vector<list_entry>> h);
    void list_one(std::uint64_t n, diagnostics* d, handler<list_entry> h);
    void uidl(diagnostics* d, handler<std::vector<uidl_entry>> h);
    void uidl_one(std::uint64_t n, diagnostics* d, handler<uidl_entry> h);
    void list_uidl(diagnostics* d, handler<std::vector<message_info>> h);
    void retr(std::uint64_t n, diagnostics* d, handler<std::string> h);
    void retr_to(std::uint64_t n, body_sink sink, diagnostics* d, handler<std::uint64_t> h);
    void top(std::uint64_t n, std::uint64_t lines, diagnostics* d, handler<std::string> h);
    void simple(command_kind kind, std::uint64_t n, diagnostics* d, handler<> h);
    void last(diagnostics* d, handler<std::uint64_t> h);
    void fetch(std::vector<std::uint64_t> numbers, fetch_callbacks callbacks, handler<> h);
    void fetch_uids(std::vector<std::string> uids, fetch_callbacks callbacks, handler<std::vector<std::string>> h);
    void remove(std::vector<std::uint64_t> numbers, handler<std::vector<error_code>> h);

    session_state state() const noexcept;
    const capabilities* known_capabilities() const noexcept;
    const std::string& greeting_text() const noexcept;
    std::size_t pipeline_depth() const noexcept;
    bool encrypted() const noexcept;
    bool tls_resumed() const noexcept;
    error_code last_error() const noexcept;
    bool failed_on_pipelined_command() const noexcept;
    void close() noexcept;

private:
    std::shared_ptr<engine> engine_;
};

}  // namespace detail
}  // namespace pop3

#endif
