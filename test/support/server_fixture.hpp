#ifndef POP3_TEST_SUPPORT_SERVER_FIXTURE_HPP
#define POP3_TEST_SUPPORT_SERVER_FIXTURE_HPP

// An io_context with the test server on it and one account, "alice".

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

namespace pop3::test {

struct server_fixture {
    boost::asio::io_context ioc;
    testing::server server;
    std::vector<std::string> mail;

    explicit server_fixture(testing::server_options options = {}, testing::maildrop_spec spec = make_spec(12, 4096),
                            std::optional<testing::fault_plan> faults = {})
        : server(ioc.get_executor(), options) {
        mail = testing::generate_messages(spec);
        server.add_account("alice", "wonderland", mail, faults);
        REQUIRE(!server.start());
    }

    static testing::maildrop_spec make_spec(std::size_t count, std::size_t median_size = 4096) {
        testing::maildrop_spec spec;
        spec.count = count;
        spec.median_size = median_size;
        spec.seed = 7;
        return spec;
    }

    /// Plain TCP on loopback: passwords allowed without TLS.
    session_options plain_options(std::chrono::milliseconds reply_timeout = std::chrono::seconds(10)) const {
        session_options o;
        o.allow_plaintext_auth = true;
        o.tls = pop3::tls_policy::none;
        o.reply_timeout = reply_timeout;
        return o;
    }

    std::string port() const { return std::to_string(server.port()); }

    boost::asio::awaitable<session> logged_in(session_options o) {
        session s(ioc, o);
        co_await s.async_connect("127.0.0.1", port(), boost::asio::use_awaitable);
        co_await s.async_capa(boost::asio::use_awaitable);
        co_await s.async_login("alice", "wonderland", boost::asio::use_awaitable);
        co_return s;
    }
};

}  // namespace pop3::test

#endif
