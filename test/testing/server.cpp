// The test server itself: what it generates, reads and counts.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "../support/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using asio::use_awaitable;

TEST_CASE("generated maildrops are deterministic and carry the awkward cases") {
    testing::maildrop_spec spec;
    spec.count = 50;
    spec.seed = 42;
    const auto a = testing::generate_messages(spec);
    const auto b = testing::generate_messages(spec);
    CHECK(a == b);
    spec.seed = 43;
    CHECK(testing::generate_messages(spec) != a);
    bool dot_line = false, eight_bit = false;
    for (const auto& m : a) {
        CHECK(m.size() >= spec.min_size);
        CHECK(m.size() <= spec.max_size + 2);
        CHECK(m.substr(m.size() - 2) == "\r\n");
        dot_line |= m.find("\r\n.") != std::string::npos;
        for (unsigned char c : m) eight_bit |= c >= 0x80;
    }
    CHECK(dot_line);
    CHECK(eight_bit);
    spec.size_sigma = 0;
    spec.median_size = 5000;
    for (const auto& m : testing::generate_messages(spec)) CHECK(m.size() == 5000);
}

TEST_CASE("a Maildir is served with CRLF line endings") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("pop3-maildir-" + std::to_string(::getpid()));
    fs::create_directories(dir / "cur");
    fs::create_directories(dir / "new");
    fs::create_directories(dir / "tmp");
    std::ofstream(dir / "cur" / "1.a") << "Subject: one\n\nfirst\n.dot\n";
    std::ofstream(dir / "new" / "2.b") << "Subject: two\r\n\r\nsecond";
    std::ofstream(dir / "tmp" / "3.c") << "not delivered yet\n";
    const auto messages = testing::read_maildir(dir.string());
    fs::remove_all(dir);
    REQUIRE(messages.size() == 2);
    CHECK(messages[0] == "Subject: one\r\n\r\nfirst\r\n.dot\r\n");
    CHECK(messages[1] == "Subject: two\r\n\r\nsecond\r\n");

    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    server.add_account("m", "pw", messages);
    REQUIRE(!server.start());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session_options o;
        o.allow_plaintext_auth = true;
        o.tls = pop3::tls_policy::none;
        session s(ioc, o);
        co_await s.async_connect("127.0.0.1", std::to_string(server.port()), use_awaitable);
        co_await s.async_login("m", "pw", use_awaitable);
        CHECK(co_await s.async_retr(1, use_awaitable) == messages[0]);
        CHECK(co_await s.async_retr(2, use_awaitable) == messages[1]);
    });
}

TEST_CASE("a seeded random drop falls at the same place every time") {
    auto received = [](std::uint64_t seed) {
        asio::io_context ioc;
        testing::server_options so;
        so.faults.random_drop_seed = seed;
        so.faults.random_drop_window = 20000;
        testing::server server(ioc.get_executor(), so);
        testing::maildrop_spec spec;
        spec.count = 3;
        spec.median_size = 10000;
        spec.size_sigma = 0;
        server.add_account("d", "pw", testing::generate_messages(spec));
        REQUIRE(!server.start());
        std::uint64_t got = 0;
        pop3::test::run(ioc, [&]() -> awaitable<void> {
            session_options o;
            o.allow_plaintext_auth = true;
            o.tls = pop3::tls_policy::none;
            session s(ioc, o);
            auto [ec] = co_await s.async_connect("127.0.0.1", std::to_string(server.port()),
                                                 asio::as_tuple(use_awaitable));
            if (ec) co_return;
            auto [ec2] = co_await s.async_login("d", "pw", asio::as_tuple(use_awaitable));
            if (ec2) co_return;
            for (std::uint64_t n = 1; n <= 3; ++n) {
                auto [ec3, m] = co_await s.async_retr(n, asio::as_tuple(use_awaitable));
                if (ec3) {
                    CHECK(is_fatal(ec3));
                    break;
                }
                got += m.size();
            }
        });
        return std::make_pair(got, server.stats().bytes_out);
    };
    const auto first = received(7);
    CHECK(first == received(7));
    CHECK(first.second < 20000);  // dropped inside the window
    CHECK(first.first < 30000);   // so not every message arrived
}

TEST_CASE("the server counts connections, and the peak") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    server.add_account("c", "pw", testing::generate_messages({}));
    REQUIRE(!server.start());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session_options o;
        o.allow_plaintext_auth = true;
        o.tls = pop3::tls_policy::none;
        std::vector<std::unique_ptr<session>> sessions;
        for (int i = 0; i < 20; ++i) {
            sessions.push_back(std::make_unique<session>(ioc, o));
            co_await sessions.back()->async_connect("127.0.0.1", std::to_string(server.port()), use_awaitable);
        }
        CHECK(server.stats().active == 20);
        for (auto& s : sessions) co_await s->async_quit(use_awaitable);
        asio::steady_timer t(ioc, std::chrono::milliseconds(20));
        co_await t.async_wait(use_awaitable);
        CHECK(server.stats().active == 0);
    });
    CHECK(server.stats().peak_active == 20);
    CHECK(server.stats().connections == 20);
}

TEST_CASE("commands pipelined behind QUIT are not answered") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    server.add_account("q", "pw", testing::generate_messages({}));
    REQUIRE(!server.start());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        asio::ip::tcp::socket sock(ioc);
        co_await sock.async_connect({asio::ip::make_address("127.0.0.1"), server.port()}, use_awaitable);
        const std::string script = "USER q\r\nPASS pw\r\nDELE 1\r\nQUIT\r\nSTAT\r\nDELE 2\r\n";
        co_await asio::async_write(sock, asio::buffer(script), use_awaitable);
        std::string got;
        char buf[4096];
        for (;;) {
            auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable));
            if (ec) break;
            got.append(buf, n);
        }
        CHECK(got.substr(got.size() - 9) == "+OK bye\r\n");
        CHECK(got.find("+OK 9 ") == std::string::npos);  // no STAT answer
    });
    CHECK(server.deleted("q").size() == 1);
}

TEST_CASE("autologout: an idle connection is closed; an account plan without it turns it off at login") {
    testing::server_options so;
    so.faults.autologout = std::chrono::milliseconds(150);
    asio::io_context ioc;
    testing::server server(ioc.get_executor(), so);
    server.add_account("idle", "pw", {"Subject: a\r\n\r\nx\r\n"});                       // the server's plan
    server.add_account("patient", "pw", {"Subject: b\r\n\r\ny\r\n"}, testing::fault_plan{});  // none of its own
    REQUIRE(!server.start());
    for (const std::string user : {"idle", "patient"}) {
        CAPTURE(user);
        test::run(ioc, [&]() -> awaitable<void> {
            session_options o;
            o.tls = tls_policy::none;
            o.allow_plaintext_auth = true;
            session s(ioc, o);
            co_await s.async_connect("127.0.0.1", std::to_string(server.port()), use_awaitable);
            co_await s.async_login(user, "pw", use_awaitable);
            asio::steady_timer t(ioc, std::chrono::milliseconds(400));  // idle past the autologout
            co_await t.async_wait(use_awaitable);
            auto [ec] = co_await s.async_noop(asio::as_tuple(use_awaitable));
            if (user == "idle") {
                CHECK(ec == error::connection_closed);
                CHECK(server.messages(user).size() == 1);  // closed without an UPDATE
            } else {
                CHECK(!ec);
                co_await s.async_quit(use_awaitable);
            }
        });
    }
}
