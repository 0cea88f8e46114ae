// Hardening, the session's side: framings and numbers a broken or hostile
// server sends, over a scripted stream (every byte and every read boundary
// chosen here) and over the test server with its replies rewritten. Each
// ends in the right data or a clear error, in bounded time and memory.

#include <pop3/session.hpp>
#include <pop3/testing/scripted_stream.hpp>
#include <pop3/testing/server.hpp>

#include "../support/run.hpp"
#include "../support/server_fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using testing::scripted_stream;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

session_options scripted_options() {
    session_options o;
    o.allow_plaintext_auth = true;
    o.tls = tls_policy::none;
    o.reply_timeout = std::chrono::seconds(5);
    return o;
}

// A session over a scripted stream whose greeting is `greeting`; returns
// the greeting's outcome.
error_code greet(const std::string& greeting, bool eof_after = true) {
    asio::io_context ioc;
    scripted_stream stream(ioc.get_executor());
    auto remote = stream.remote();
    if (!greeting.empty()) remote.push(greeting);
    if (eof_after) remote.push_error(asio::error::eof);
    auto s = session::over(std::move(stream), scripted_options());
    error_code result;
    test::run(ioc, [&]() -> awaitable<void> {
        auto [ec] = co_await s.async_greeting(tuple_awaitable);
        result = ec;
    });
    return result;
}

// Logged in over a scripted stream that answers each command line with
// the next reply; then `body` runs.
template <class Body>
void scripted_session(std::vector<std::string> replies, Body body, session_options o = scripted_options()) {
    asio::io_context ioc;
    scripted_stream stream(ioc.get_executor());
    auto remote = stream.remote();
    remote.push("+OK ready\r\n");
    replies.insert(replies.begin(), {"+OK\r\n", "+OK logged in\r\n"});
    remote.answer_lines(std::move(replies));
    auto s = session::over(std::move(stream), o);
    test::run(ioc, [&]() -> awaitable<void> {
        auto [g] = co_await s.async_greeting(tuple_awaitable);
        REQUIRE(!g);
        auto [l] = co_await s.async_login("u", "p", tuple_awaitable);
        REQUIRE(!l);
        co_await body(s, remote);
    });
}

}  // namespace

TEST_CASE("greetings: empty, EOF first, lowercase +ok, +OKAY") {
    CHECK(greet("\r\n") == error::bad_status_indicator);
    CHECK(greet("") == error::connection_closed);
    CHECK(greet("+OK ha") == error::eof_in_status_line);  // cut inside the greeting
    CHECK(greet("+ok lowercase is fine\r\n", false) == error_code{});
    CHECK(greet("+OKAY\r\n") == error::bad_status_indicator);
    CHECK(greet("-ERR [SYS/TEMP] go away\r\n") == error::server_refused);
    CHECK(greet(std::string("+OK a\0b\r\n", 9)) == error::nul_in_status_line);
}

TEST_CASE("-ERR text: 100 KB is a framing error at the cap; invalid UTF-8 and escapes are printed safely") {
    scripted_session({"-ERR [AUTH] " + std::string(100 * 1024, 'x') + "\r\n"}, [](session& s, auto&) -> awaitable<void> {
        diagnostics d;
        auto [ec] = co_await s.async_noop(tuple_awaitable, &d);
        CHECK(ec == error::status_line_too_long);  // failed at 512 octets, not after 100 KB
        CHECK(d.server_message().size() <= 512);
        CHECK(s.state() == session_state::failed);
    });
    const std::string nasty = "-ERR [SYS/PERM] \xff\xfe bad \x1b[31mred\x1b[0m \xc3\xa9t\xc3\xa9\r\n";
    scripted_session({nasty}, [](session& s, auto&) -> awaitable<void> {
        diagnostics d;
        auto [ec] = co_await s.async_noop(tuple_awaitable, &d);
        CHECK(ec == error::server_refused);
        CHECK(d.code().kind == response_code_kind::sys_perm);
        const std::string shown = printable(d.server_message());
        CHECK(shown.find('\x1b') == std::string::npos);  // no terminal escape reaches a log
        CHECK(shown.find("\\xFF\\xFE") != std::string::npos);
        CHECK(shown.find("\xc3\xa9t\xc3\xa9") != std::string::npos);  // well-formed UTF-8 kept
        CHECK(printable(std::string(100 * 1024, 'y')).size() < 1100);  // and cut
        CHECK(s.state() == session_state::transaction);  // a refusal, the session goes on
    });
}

TEST_CASE("bare CR, NUL and dot-stuffing byte-exact at every read boundary") {
    // Bare CRs next to CRLFs, a CR right before the terminator's CRLF, NULs,
    // stuffed dots and 8-bit octets: every split point of the reply.
    const std::string content = std::string("Subject: \rx\r\n\r\na\rb\r\r\n\r\n.\r..\r\n\0nul\r\n\xff\r\r\n", 39);
    std::string stuffed;
    bool line_start = true;
    for (char c : content) {
        if (line_start && c == '.') stuffed += '.';
        stuffed += c;
        line_start = c == '\n';
    }
    const std::string reply = "+OK\r\n" + stuffed + ".\r\n";
    for (std::size_t split = 1; split < reply.size(); ++split) {
        CAPTURE(split);
        asio::io_context ioc;
        scripted_stream stream(ioc.get_executor());
        auto remote = stream.remote();
        remote.push("+OK ready\r\n");
        remote.push("+OK\r\n");  // USER
        remote.push("+OK logged in\r\n");  // PASS
        remote.push(reply.substr(0, split));  // one read each
        remote.push(reply.substr(split) + "+OK after the terminator\r\n");
        auto o = scripted_options();
        o.pipeline.depth = 4;  // RETR and NOOP in flight together
        auto s = session::over(std::move(stream), o);
        error_code retr_ec = error::timeout, noop_ec = error::timeout;
        std::string body;
        s.async_greeting([&](error_code ec) {
            REQUIRE(!ec);
            s.async_login("u", "p", [](error_code e) { REQUIRE(!e); });
            s.async_retr(1, [&](error_code e, std::string b) {
                retr_ec = e;
                body = std::move(b);
            });
            s.async_noop([&](error_code e) { noop_ec = e; });  // takes the bytes after the terminator
        });
        ioc.run_for(std::chrono::seconds(10));
        CHECK_MESSAGE(!retr_ec, retr_ec.message());
        CHECK(body == content);
        CHECK_MESSAGE(!noop_ec, noop_ec.message());
    }
}

TEST_CASE("STAT of 2^31 and a LIST that disagrees: numbers as given, nothing preallocated, LIST wins") {
    testing::fault_plan lies;
    lies.rewrite = [](std::string_view command, std::string& reply) {
        if (command == "STAT") reply = "+OK 2147483648 18446744073709551615\r\n";
    };
    test::server_fixture f({}, test::server_fixture::make_spec(3), lies);
    test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        auto [ec, st] = co_await s.async_stat(tuple_awaitable);
        REQUIRE(!ec);
        CHECK(st.count == 2147483648ull);
        CHECK(st.octets == UINT64_MAX);
        auto [lec, listing] = co_await s.async_list_uidl(tuple_awaitable);
        REQUIRE(!lec);
        CHECK(listing.size() == 3);
        std::vector<std::uint64_t> numbers;
        for (const auto& m : listing) numbers.push_back(m.number);
        std::size_t delivered = 0;
        fetch_callbacks cb;
        cb.open = [](const message_info&) { return body_sink{}; };
        cb.done = [&](const message_info&, error_code e, const diagnostics&) { delivered += !e; };
        auto [fec] = co_await s.async_fetch(numbers, std::move(cb), tuple_awaitable);
        CHECK(!fec);
        CHECK(delivered == 3);
        co_await s.async_quit(tuple_awaitable);
    });
}

TEST_CASE("listings: more entries than the cap, and a message listed twice, are errors, the session goes on") {
    scripted_session({"+OK\r\n1 10\r\n2 10\r\n3 10\r\n4 10\r\n.\r\n", "+OK\r\n1 10\r\n2 10\r\n2 10\r\n.\r\n",
                      "+OK\r\n2 a\r\n1 b\r\n2 c\r\n.\r\n", "+OK\r\n3 10\r\n1 10\r\n2 10\r\n.\r\n"},
                     [](session& s, auto&) -> awaitable<void> {
                         auto [ec1, l1] = co_await s.async_list(tuple_awaitable);
                         CHECK(ec1 == error::too_many_entries);
                         auto [ec2, l2] = co_await s.async_list(tuple_awaitable);
                         CHECK(ec2 == error::duplicate_message_number);
                         auto [ec3, u3] = co_await s.async_uidl(tuple_awaitable);
                         CHECK(ec3 == error::duplicate_message_number);  // found though out of order
                         auto [ec4, l4] = co_await s.async_list(tuple_awaitable);
                         CHECK(!ec4);  // out of order but whole: accepted
                         CHECK(l4.size() == 3);
                         CHECK(s.state() == session_state::transaction);
                     },
                     [] {
                         auto o = scripted_options();
                         o.limits.max_listing_entries = 3;
                         return o;
                     }());
}

TEST_CASE("a body that starts with a status line: the replies are out of step, the session stops") {
    for (const std::string& start : {std::string("+OK 120 octets\r\n"), std::string("-ERR\r\n"), std::string("+ok\r\n")}) {
        CAPTURE(start);
        scripted_session({"+OK\r\n" + start + "Subject: x\r\n\r\nbody\r\n.\r\n"}, [](session& s, auto& remote) -> awaitable<void> {
            auto [ec, body] = co_await s.async_retr(2, tuple_awaitable);
            CHECK(ec == error::reply_out_of_step);
            CHECK(body.empty());
            const auto before = remote.written().size();
            auto [dec] = co_await s.async_dele(2, tuple_awaitable);
            CHECK(dec == error::session_failed);
            CHECK(remote.written().size() == before);  // no DELE went out
        });
    }
    // Lines that only look alike are data.
    scripted_session({"+OK\r\n+OKAY then\r\n-ERRATA\r\n.\r\n", "+OK\r\nx\r\n+OK\r\n.\r\n"}, [](session& s, auto&) -> awaitable<void> {
        auto [ec, body] = co_await s.async_retr(1, tuple_awaitable);
        CHECK(!ec);
        CHECK(body == "+OKAY then\r\n-ERRATA\r\n");
        auto [ec2, body2] = co_await s.async_retr(2, tuple_awaitable);
        CHECK(!ec2);
        CHECK(body2 == "x\r\n+OK\r\n");
    });
    // And the check can be turned off for a maildrop that holds such mail.
    auto o = scripted_options();
    o.check_message_start = false;
    scripted_session({"+OK\r\n+OK 3\r\n.\r\n"}, [](session& s, auto&) -> awaitable<void> {
        auto [ec, body] = co_await s.async_retr(1, tuple_awaitable);
        CHECK(!ec);
        CHECK(body == "+OK 3\r\n");
    }, o);
}

TEST_CASE("LIST says 100, RETR sends 10 MB: refused over the cap and the session goes on; under it, a warning") {
    testing::fault_plan lies;
    const std::string big = [] {
        std::string b = "Subject: big\r\n\r\n";
        while (b.size() < 10u << 20) b += std::string(98, 'z') + "\r\n";
        return b;
    }();
    lies.rewrite = [&big](std::string_view command, std::string& reply) {
        if (command == "LIST") {  // message 1 is listed at 100 octets
            const std::size_t from = reply.find("\r\n1 ") + 4;
            reply.replace(from, reply.find("\r\n", from) - from, "100");
        }
        if (command == "RETR 1") reply = "+OK\r\n" + big + ".\r\n";
    };
    test::server_fixture f({}, test::server_fixture::make_spec(3), lies);
    for (const std::uint64_t cap : {std::uint64_t(1) << 20, std::uint64_t(64) << 20}) {
        CAPTURE(cap);
        std::map<std::uint64_t, std::pair<error_code, std::string>> seen;
        std::map<std::uint64_t, std::uint64_t> received;
        test::run(f.ioc, [&]() -> awaitable<void> {
            auto o = f.plain_options();
            o.max_message_size = cap;
            session s = co_await f.logged_in(o);
            auto [lec, listing] = co_await s.async_list_uidl(tuple_awaitable);
            REQUIRE(!lec);
            CHECK(listing[0].octets == 100);
            fetch_callbacks cb;
            cb.open = [&](const message_info& m) {
                body_sink sink;
                sink.write = [&received, n = m.number](std::string_view c) {
                    received[n] += c.size();
                    return error_code{};
                };
                return sink;
            };
            cb.done = [&](const message_info& m, error_code e, const diagnostics& d) {
                seen[m.number] = {e, d.client_message()};
            };
            std::vector<std::uint64_t> numbers(3);
            for (std::uint64_t i = 0; i < 3; ++i) numbers[i] = i + 1;
            auto [fec] = co_await s.async_fetch(numbers, std::move(cb), tuple_awaitable);
            CHECK(!fec);
            co_await s.async_quit(tuple_awaitable);
        });
        if (cap == (std::uint64_t(1) << 20)) {
            CHECK(seen[1].first == error::message_too_large);
            CHECK(received[1] <= cap);  // streamed under the cap, the rest dropped
        } else {
            CHECK(!seen[1].first);
            CHECK(received[1] == big.size());
            const std::string warning = "listed 100 octets, received " + std::to_string(big.size());
            CHECK(seen[1].second.find(warning) != std::string::npos);
        }
        CHECK(!seen[2].first);  // the session went on, in step
        CHECK(seen[2].second.empty());
        CHECK(!seen[3].first);
    }
}

TEST_CASE("a server sending a byte now and then meets the per-reply deadline, not only the idle timeout") {
    testing::server_options so;
    so.bandwidth = 50;  // one octet every 20 ms: never idle for long
    testing::fault_plan trickle;
    trickle.one_byte_writes = true;
    test::server_fixture f(so, test::server_fixture::make_spec(1, 2000), trickle);
    test::run(f.ioc, [&]() -> awaitable<void> {
        auto o = f.plain_options(std::chrono::seconds(5));
        o.command_timeout = std::chrono::milliseconds(2500);  // the greeting and the login's replies fit
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), asio::use_awaitable);
        co_await s.async_login("alice", "wonderland", asio::use_awaitable);
        auto [ec, body] = co_await s.async_retr(1, tuple_awaitable);  // about 2 KB: 40 s at this rate
        CHECK(ec == error::timeout);
        CHECK(s.state() == session_state::failed);
    }, std::chrono::seconds(30));
}

namespace {

// A server that writes each reply whole, blocking, before it reads again
// (RFC 2449 section 6.6 warns of it), on a socket with small buffers. A
// client that wrote all its pipelined commands before reading would
// deadlock with it: both sides blocked in write.
class blocking_server {
public:
    static std::string body(std::size_t n) {
        std::string b = "Subject: " + std::to_string(n) + "\r\n\r\n";
        while (b.size() < 8000) b += std::string(70, static_cast<char>('a' + n % 26)) + "\r\n";
        return b;
    }

    blocking_server() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listener_ >= 0);
        const int small = 4096;
        ::setsockopt(listener_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);  // inherited by the accepted socket
        ::setsockopt(listener_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(listener_, 1) == 0);
        socklen_t len = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~blocking_server() {
        ::shutdown(listener_, SHUT_RDWR);
        thread_.join();
        ::close(listener_);
    }
    unsigned short port() const { return port_; }

private:
    static bool write_all(int fd, const std::string& s) {
        for (std::size_t at = 0; at < s.size();) {
            const ssize_t n = ::send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);
            if (n <= 0) return false;
            at += static_cast<std::size_t>(n);
        }
        return true;
    }
    void serve() {
        const int fd = ::accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        std::string in;
        bool open = write_all(fd, "+OK blocking server\r\n");
        char buf[4096];
        while (open) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            in.append(buf, static_cast<std::size_t>(n));
            std::size_t lf;
            while (open && (lf = in.find('\n')) != std::string::npos) {
                const std::string line = in.substr(0, lf);
                in.erase(0, lf + 1);
                std::string reply = "+OK\r\n";
                if (line.rfind("RETR ", 0) == 0) reply += body(std::stoul(line.substr(5))) + ".\r\n";
                open = write_all(fd, reply) && line.rfind("QUIT", 0) != 0;  // whole, before reading on
            }
        }
        ::close(fd);
    }

    int listener_ = -1;
    unsigned short port_ = 0;
    std::thread thread_;
};

}  // namespace

TEST_CASE("a server that writes whole replies before reading again: pipelined commands larger than the buffers, no deadlock") {
    blocking_server srv;
    asio::io_context ioc;
    asio::ip::tcp::socket socket(ioc);
    socket.open(asio::ip::tcp::v4());
    socket.set_option(asio::socket_base::send_buffer_size(4096));
    socket.connect({asio::ip::address_v4::loopback(), srv.port()});
    auto o = scripted_options();
    o.pipeline.depth = 4096;  // about 24 KB of commands in flight: more than both buffers hold
    auto s = session::over(std::move(socket), o);
    constexpr std::size_t count = 2000;
    std::vector<std::string> bodies(count + 1);
    std::size_t whole = 0;
    error_code fetch_ec = error::timeout, quit_ec = error::timeout;
    s.async_greeting([&](error_code ec) {
        REQUIRE(!ec);
        s.async_login("u", "p", [](error_code e) { REQUIRE(!e); });
        std::vector<std::uint64_t> numbers;
        for (std::uint64_t n = 1; n <= count; ++n) numbers.push_back(n);
        fetch_callbacks cb;
        cb.open = [&](const message_info& m) {
            body_sink sink;
            sink.write = [&bodies, n = m.number](std::string_view c) {
                bodies[n].append(c);
                return error_code{};
            };
            return sink;
        };
        cb.done = [&](const message_info& m, error_code e, const diagnostics&) {
            whole += !e && bodies[m.number] == blocking_server::body(m.number);
        };
        s.async_fetch(numbers, std::move(cb), [&](error_code e) {
            fetch_ec = e;
            s.async_quit([&](error_code q) { quit_ec = q; });
        });
    });
    ioc.run_for(std::chrono::seconds(60));
    CHECK(!fetch_ec);
    CHECK(!quit_ec);
    CHECK(whole == count);
}
