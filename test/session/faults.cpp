// Timeouts, cancellation, dropped connections and broken framing.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "../support/fetch_all.hpp"
#include "../support/run.hpp"
#include "../support/server_fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <doctest/doctest.h>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {
struct fixture : pop3::test::server_fixture {
    explicit fixture(testing::server_options options = {}, std::optional<testing::fault_plan> faults = {})
        : server_fixture(options, make_spec(8, 20000), faults) {}
    session_options options() const { return plain_options(std::chrono::milliseconds(300)); }
};
}  // namespace

TEST_CASE("a silent server times out mid-session; the session says so and stays failed") {
    testing::fault_plan faults;
    faults.stall_at_command = 4;  // USER=1 PASS=2 STAT=3, RETR=4
    fixture f({}, faults);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        co_await s.async_stat(use_awaitable);
        auto [ec, m] = co_await s.async_retr(1, tuple_awaitable);
        CHECK(ec == error::timeout);
        CHECK(s.state() == session_state::failed);
        CHECK(s.last_error() == error::timeout);
        diagnostics d;
        auto [ec2, st] = co_await s.async_stat(tuple_awaitable, &d);
        CHECK(ec2 == error::session_failed);
        CHECK(d.client_message().find("did not answer in time") != std::string::npos);
    });
}

TEST_CASE("a connection dropped inside a message is eof_in_body, and nothing is deleted") {
    testing::fault_plan faults;
    faults.drop_after_bytes = 5000;  // inside the first message
    fixture f({}, faults);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        co_await s.async_dele(2, use_awaitable);
        auto [ec, m] = co_await s.async_retr(1, tuple_awaitable);
        CHECK(ec == error::eof_in_body);
        CHECK(is_fatal(ec));
    });
    f.ioc.run_for(std::chrono::milliseconds(20));
    CHECK(f.server.deleted("alice").empty());
}

TEST_CASE("broken framing is a protocol error, not a hang") {
    testing::fault_plan faults;
    faults.garbage_at_command = 3;
    fixture f({}, faults);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        auto [ec, st] = co_await s.async_stat(tuple_awaitable);
        CHECK(ec == error::bad_status_indicator);
    });
}

TEST_CASE("an injected -ERR on one command, then the session goes on") {
    testing::fault_plan faults;
    faults.err_at_command = 3;
    fixture f({}, faults);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        diagnostics d;
        auto [ec, st] = co_await s.async_stat(tuple_awaitable, &d);
        CHECK(ec == error::server_refused);
        CHECK(d.code().kind == response_code_kind::sys_temp);
        CHECK((co_await s.async_stat(use_awaitable)).count == f.mail.size());
    });
}

TEST_CASE("replies one byte at a time") {
    testing::fault_plan faults;
    faults.one_byte_writes = true;
    fixture f({}, faults);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        CHECK(co_await s.async_retr(1, use_awaitable) == f.mail[0]);
    });
}

TEST_CASE("a -ERR greeting, [IN-USE], and a refused connection") {
    testing::fault_plan greet;
    greet.greeting_err = true;
    testing::server_options so;
    so.faults = greet;
    fixture f(so);
    testing::fault_plan locked;
    locked.in_use = true;
    f.server.add_account("carol", "pw", {"Subject: x\r\n\r\nx\r\n"}, locked);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.options());
        auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec == error::server_refused);

        session refused(f.ioc, f.options());
        auto [ec2] = co_await refused.async_connect("127.0.0.1", "1", tuple_awaitable);
        CHECK(ec2 == asio::error::connection_refused);
    });
    fixture g;
    testing::fault_plan locked2;
    locked2.in_use = true;
    g.server.add_account("carol", "pw", {"Subject: x\r\n\r\nx\r\n"}, locked2);
    pop3::test::run(g.ioc, [&]() -> awaitable<void> {
        session s(g.ioc, g.options());
        co_await s.async_connect("127.0.0.1", g.port(), use_awaitable);
        diagnostics d;
        auto [ec] = co_await s.async_login("carol", "pw", tuple_awaitable, &d);
        CHECK(ec == error::server_refused);
        CHECK(d.code().kind == response_code_kind::in_use);
        CHECK(d.code().is_transient());
    });
}

TEST_CASE("cancelling a written command abandons it; the session stays in step") {
    testing::server_options so;
    so.one_way_delay = std::chrono::milliseconds(20);
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.options();
        o.reply_timeout = std::chrono::seconds(5);
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);

        asio::cancellation_signal signal;
        error_code cancelled_ec;
        bool cancelled_done = false;
        s.async_retr(1, asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, std::string) {
                         cancelled_ec = ec;
                         cancelled_done = true;
                     }));
        // Queued behind it: must get its own reply, not RETR 1's.
        bool second_done = false;
        std::string second;
        s.async_retr(2, [&](error_code ec, std::string m) {
            CHECK(!ec);
            second = std::move(m);
            second_done = true;
        });
        asio::steady_timer t(f.ioc, std::chrono::milliseconds(5));
        co_await t.async_wait(use_awaitable);  // RETR 1 is written, its reply 35 ms away
        signal.emit(asio::cancellation_type::terminal);
        // The cancelled operation completes at once.
        t.expires_after(std::chrono::milliseconds(1));
        co_await t.async_wait(use_awaitable);
        CHECK(cancelled_done);
        CHECK(cancelled_ec == asio::error::operation_aborted);
        while (!second_done) {
            t.expires_after(std::chrono::milliseconds(2));
            co_await t.async_wait(use_awaitable);
        }
        CHECK(second == f.mail[1]);
        CHECK(co_await s.async_retr(3, use_awaitable) == f.mail[2]);
        CHECK(s.state() == session_state::transaction);
    });
}

TEST_CASE("cancelling a command that is still waiting removes it unsent") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.options();
        o.pipeline.depth = 1;
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        const auto before = f.server.stats().commands;
        asio::cancellation_signal signal;
        bool first = false, second = false;
        error_code second_ec;
        s.async_retr(1, [&](error_code ec, std::string) { first = !ec; });
        s.async_dele(2, asio::bind_cancellation_slot(signal.slot(), [&](error_code ec) {
                         second_ec = ec;
                         second = true;
                     }));
        signal.emit(asio::cancellation_type::terminal);
        co_await s.async_noop(use_awaitable);
        CHECK(first);
        CHECK(second);
        CHECK(second_ec == asio::error::operation_aborted);
        CHECK(f.server.stats().commands == before + 2);  // RETR and NOOP only
    });
}

TEST_CASE("the session deadline bounds a server that trickles") {
    testing::server_options so;
    so.bandwidth = 20000;  // 20 kB/s: each message takes about a second
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.options();
        o.reply_timeout = std::chrono::seconds(5);  // never idle long enough
        o.session_timeout = std::chrono::milliseconds(400);
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        auto [ec, m] = co_await s.async_retr(1, tuple_awaitable);
        CHECK(ec == error::timeout);
    });
}

TEST_CASE("a connect timeout on a server that never greets") {
    testing::fault_plan faults;
    faults.drop_after_bytes = 1'000'000'000;
    testing::server_options so;
    so.one_way_delay = std::chrono::seconds(5);  // the greeting would come 10 s later
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.options();
        o.connect_timeout = std::chrono::milliseconds(200);
        session s(f.ioc, o);
        auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec == error::timeout);
    });
}

TEST_CASE("over streams the user connected: tcp::socket, beast::tcp_stream, ssl::stream") {
    fixture f;
    testing::server_options tls_opts;
    tls_opts.tls = testing::server_options::tls_mode::implicit;
    fixture g(tls_opts);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), f.server.port());
        asio::ip::tcp::socket sock(f.ioc);
        co_await sock.async_connect(ep, use_awaitable);
        session s = session::over(std::move(sock), f.options());
        co_await s.async_greeting(use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        CHECK(co_await s.async_retr(1, use_awaitable) == f.mail[0]);

        boost::beast::tcp_stream ts(f.ioc);
        co_await ts.async_connect(ep, use_awaitable);
        session s2 = session::over(std::move(ts), f.options());
        co_await s2.async_greeting(use_awaitable);
        auto [ec] = co_await s2.async_login("alice", "wonderland", tuple_awaitable);
        CHECK(ec == error::server_refused);  // alice is locked by the first session
        co_await s.async_quit(use_awaitable);
        co_await s2.async_login("alice", "wonderland", use_awaitable);
        CHECK((co_await s2.async_stat(use_awaitable)).count == f.mail.size());
    });
    pop3::test::run(g.ioc, [&]() -> awaitable<void> {
        const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), g.server.port());
        auto ctx = g.server.client_tls_context();
        asio::ssl::stream<asio::ip::tcp::socket> tls(g.ioc, *ctx);
        co_await tls.next_layer().async_connect(ep, use_awaitable);
        co_await tls.async_handshake(asio::ssl::stream_base::client, use_awaitable);
        session_options o;
        session s = session::over(std::move(tls), o);
        co_await s.async_greeting(use_awaitable);
        CHECK(s.is_encrypted());
        co_await s.async_login("alice", "wonderland", use_awaitable);  // TLS: no opt-in needed
        CHECK(co_await s.async_retr(2, use_awaitable) == g.mail[1]);
    });
}

TEST_CASE("destroying a session completes its pending operations") {
    testing::server_options so;
    so.one_way_delay = std::chrono::milliseconds(20);
    fixture f(so);
    bool done = false;
    error_code result;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        auto s = std::make_unique<session>(f.ioc, f.options());
        co_await s->async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s->async_login("alice", "wonderland", use_awaitable);
        s->async_retr(1, [&](error_code ec, std::string) {
            result = ec;
            done = true;
        });
        s.reset();
        asio::steady_timer t(f.ioc, std::chrono::milliseconds(5));
        co_await t.async_wait(use_awaitable);
    });
    CHECK(done);
    CHECK(result == asio::error::operation_aborted);
}

TEST_CASE("LIST sizes far too large: the read low-water mark gives way, the fetch completes before any timeout") {
    // LIST says a thousand times each message's size, so the session
    // expects megabytes more than ever come: the last octets of the batch
    // sit under the socket's low-water mark until the session falls back to
    // waking on any octet. Were there no fallback, the reply timeout would
    // end the fetch; the mark is tried on plain TCP and under TLS.
    testing::fault_plan lies;
    lies.rewrite = [](std::string_view command, std::string& reply) {
        if (command != "LIST") return;
        std::string out;
        std::size_t pos = 0;
        while (pos < reply.size()) {
            std::size_t eol = reply.find("\r\n", pos);
            eol = eol == std::string::npos ? reply.size() : eol + 2;
            std::string line = reply.substr(pos, eol - pos);
            pos = eol;
            const std::size_t space = line.find(' ');
            if (line[0] >= '1' && line[0] <= '9' && space != std::string::npos) {
                const std::uint64_t octets = std::stoull(line.substr(space + 1));
                line = line.substr(0, space + 1) + std::to_string(octets * 1000) + "\r\n";
            }
            out += line;
        }
        reply = out;
    };
    for (auto mode : {testing::server_options::tls_mode::none, testing::server_options::tls_mode::implicit}) {
        CAPTURE(static_cast<int>(mode));
        testing::server_options so;
        so.tls = mode;
        so.bandwidth = 4'000'000;  // octets trickle in: the socket is empty when a read starts
        pop3::test::server_fixture f(so, pop3::test::server_fixture::make_spec(40, 3000), lies);
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session_options o = f.plain_options(std::chrono::seconds(3));
            if (mode == testing::server_options::tls_mode::implicit) {
                o.mode = transport::implicit_tls;
                o.tls_context = f.server.client_tls_context();
            }
            REQUIRE(o.read_low_water > 1);  // the default is on
            session s = co_await f.logged_in(o);
            auto [lec, listing] = co_await s.async_list(tuple_awaitable);  // the sizes the session goes by
            REQUIRE(!lec);
            REQUIRE(listing.size() == f.mail.size());
            CHECK(listing[0].octets == 1000 * f.mail[0].size());
            const pop3::test::fetched got = co_await pop3::test::fetch_all(s, f.mail.size());
            CHECK_MESSAGE(!got.ec, got.ec.message());
            CHECK(got.stored() == f.mail.size());
            CHECK(got.bodies == f.mail);
            // The session goes on as before, the mark off for good.
            auto [qec] = co_await s.async_quit(tuple_awaitable);
            CHECK(!qec);
        });
    }
}
