// The session over a scripted stream: no socket, every byte and every
// failure chosen by the test.

#include <pop3/session.hpp>
#include <pop3/testing/scripted_stream.hpp>

#include "../../lib/session/read_buffer.hpp"
#include "../support/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <doctest/doctest.h>

#include <cstring>
#include <string_view>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using asio::use_awaitable;
using testing::scripted_stream;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

const std::string message = "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n";

// The server's side of one whole session, one entry per reply.
const std::vector<std::string> replies = {
    "+OK ready <1.2@host>\r\n",
    "+OK\r\nUIDL\r\nPIPELINING\r\nTOP\r\n.\r\n",
    "+OK user\r\n",
    "+OK logged in\r\n",
    "+OK 1 " + std::to_string(message.size()) + "\r\n",
    "+OK\r\n1 " + std::to_string(message.size()) + "\r\n.\r\n",
    "+OK\r\nSubject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n",
    "+OK deleted\r\n",
    "+OK bye\r\n",
};
const std::string expected_commands = "CAPA\r\nUSER u\r\nPASS p\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n";

session_options options() {
    session_options o;
    o.allow_plaintext_auth = true;  // a scripted stream is not encrypted
    o.tls = pop3::tls_policy::none;
    o.reply_timeout = std::chrono::seconds(5);
    return o;
}

// Runs the whole session; returns the first error, or none.
awaitable<error_code> whole_session(session& s, std::string* body) {
    if (auto [ec] = co_await s.async_greeting(tuple_awaitable); ec) co_return ec;
    if (auto [ec, caps] = co_await s.async_capa(tuple_awaitable); ec) co_return ec;
    if (auto [ec] = co_await s.async_login("u", "p", tuple_awaitable); ec) co_return ec;
    if (auto [ec, st] = co_await s.async_stat(tuple_awaitable); ec) co_return ec;
    if (auto [ec, l] = co_await s.async_list(tuple_awaitable); ec) co_return ec;
    auto [ec, m] = co_await s.async_retr(1, tuple_awaitable);
    if (ec) co_return ec;
    *body = m;
    if (auto [e] = co_await s.async_dele(1, tuple_awaitable); e) co_return e;
    if (auto [e] = co_await s.async_quit(tuple_awaitable); e) co_return e;
    co_return error_code{};
}

}  // namespace

TEST_CASE("a whole session, replies whole, bytewise, and with partial writes") {
    for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(variant);
        asio::io_context ioc;
        scripted_stream stream(ioc.get_executor());
        auto remote = stream.remote();
        if (variant == 2) remote.set_max_write(1);
        if (variant == 3) remote.set_max_write(7);
        if (variant == 1) {
            for (const auto& r : replies) remote.push_bytewise(r);
        } else {
            // The greeting now; each reply once its command line is written.
            remote.push(replies[0]);
            remote.answer_lines({replies.begin() + 1, replies.end()});
        }
        session s = session::over(std::move(stream), options());
        std::string body;
        pop3::test::run(ioc, [&]() -> awaitable<void> {
            const error_code ec = co_await whole_session(s, &body);
            CHECK_MESSAGE(!ec, ec.message());
        });
        CHECK(body == message);
        CHECK(remote.written() == expected_commands);
        CHECK(s.state() == session_state::update);
    }
}

TEST_CASE("a failure injected at every read step ends the session cleanly") {
    // How many reads the bytewise session takes.
    std::size_t total_reads = 0;
    std::string all;
    for (const auto& r : replies) all += r;
    total_reads = all.size();
    for (std::size_t k = 0; k < total_reads; ++k) {
        CAPTURE(k);
        asio::io_context ioc;
        scripted_stream stream(ioc.get_executor());
        auto remote = stream.remote();
        for (std::size_t i = 0; i < all.size(); ++i) {
            if (i == k)
                remote.push_error(k % 2 ? error_code(asio::error::eof) : error_code(asio::error::connection_reset));
            remote.push(std::string(1, all[i]));
        }
        session s = session::over(std::move(stream), options());
        std::string body;
        error_code result;
        pop3::test::run(ioc, [&]() -> awaitable<void> { result = co_await whole_session(s, &body); });
        REQUIRE(result);
        CHECK(is_fatal(result));
        CHECK(s.state() == session_state::failed);
        // Nothing after the failure was written; DELE only if RETR succeeded first.
        if (body.empty()) CHECK(remote.written().find("DELE") == std::string::npos);
    }
}

TEST_CASE("cancelling in the middle of a reply drops the rest of it") {
    asio::io_context ioc;
    scripted_stream stream(ioc.get_executor());
    auto remote = stream.remote();
    remote.push(replies[0]);
    remote.push("+OK\r\n");
    remote.push("+OK\r\n");
    session s = session::over(std::move(stream), options());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        co_await s.async_greeting(use_awaitable);
        co_await s.async_login("u", "p", use_awaitable);
        asio::cancellation_signal signal;
        error_code first_ec;
        std::string got_first;
        s.async_retr(1, asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, std::string m) {
                         first_ec = ec;
                         got_first = m;
                     }));
        std::string second;
        bool second_done = false;
        s.async_retr(2, [&](error_code ec, std::string m) {
            CHECK(!ec);
            second = m;
            second_done = true;
        });
        remote.push("+OK\r\nhalf of the first ");
        asio::steady_timer t(ioc, std::chrono::milliseconds(2));
        co_await t.async_wait(use_awaitable);
        signal.emit(asio::cancellation_type::terminal);
        remote.push("message\r\n.\r\n");
        remote.push("+OK\r\nsecond\r\n.\r\n");
        while (!second_done) {
            t.expires_after(std::chrono::milliseconds(1));
            co_await t.async_wait(use_awaitable);
        }
        CHECK(first_ec == asio::error::operation_aborted);
        CHECK(got_first.empty());
        CHECK(second == "second\r\n");
        CHECK(s.state() == session_state::transaction);
    });
    CHECK(remote.written() == "USER u\r\nPASS p\r\nRETR 1\r\nRETR 2\r\n");
}

TEST_CASE("bytes no command asked for end the session before anything else is sent") {
    asio::io_context ioc;
    scripted_stream stream(ioc.get_executor());
    auto remote = stream.remote();
    remote.push(replies[0]);
    remote.push("+OK\r\n");
    remote.push("+OK\r\n+OK extra\r\n");  // PASS answered twice
    session s = session::over(std::move(stream), options());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        co_await s.async_greeting(use_awaitable);
        auto [ec] = co_await s.async_login("u", "p", tuple_awaitable);
        // The login itself completed; the extra reply is found right after.
        CHECK(!ec);
        auto [ec2] = co_await s.async_dele(1, tuple_awaitable);
        CHECK(ec2 == error::session_failed);
        CHECK(s.last_error() == error::unexpected_data);
    });
    CHECK(remote.written().find("DELE") == std::string::npos);
}

TEST_CASE("USER refused: login reports USER's -ERR") {
    asio::io_context ioc;
    scripted_stream stream(ioc.get_executor());
    auto remote = stream.remote();
    remote.push(replies[0]);
    remote.push("-ERR [AUTH] no such user\r\n");
    remote.push("-ERR send USER first\r\n");
    session s = session::over(std::move(stream), options());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        co_await s.async_greeting(use_awaitable);
        diagnostics d;
        auto [ec] = co_await s.async_login("u", "p", tuple_awaitable, &d);
        CHECK(ec == error::server_refused);
        CHECK(d.server_message() == "no such user");
        CHECK(d.code().kind == response_code_kind::auth);
        CHECK(s.state() == session_state::authorization);
    });
}

TEST_CASE("read buffers: growing keeps the octets asked for, and a buffer given back is used again") {
    pop3::detail::read_buffer a;
    a.grow(4096, 0);
    REQUIRE(a.size() == 4096);
    std::memcpy(a.data(), "unparsed", 8);
    a.grow(8192, 8);
    CHECK(a.size() == 8192);
    CHECK(std::string_view(a.data(), 8) == "unparsed");
    a.grow(100, 8);  // never shrinks
    CHECK(a.size() == 8192);
    char* const given_back = a.data();
    a.reset();
    CHECK(a.data() == nullptr);
    CHECK(a.size() == 0);
    pop3::detail::read_buffer b;
    b.grow(8192, 0);
    CHECK(b.data() == given_back);  // from this thread's cache, not the heap
    pop3::detail::read_buffer c;
    c.grow(8192, 0);
    CHECK(c.data() != b.data());
}
