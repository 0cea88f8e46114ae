// Example 1: connect, log in, list, fetch every message, delete, quit.
//
// Runs against the built-in test server on loopback, so it needs nothing
// else. Against a real server, drop the server lines, use
// transport::implicit_tls (port 995) and leave allow_plaintext_auth off.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>

namespace asio = boost::asio;

asio::awaitable<void> fetch_everything(std::string port, std::vector<std::string> expected) {
    pop3::session_options options;
    options.allow_plaintext_auth = true;  // the test server speaks plain TCP on loopback
    options.tls = pop3::tls_policy::none;
    pop3::session s(co_await asio::this_coro::executor, options);

    co_await s.async_connect("127.0.0.1", port, asio::use_awaitable);
    co_await s.async_capa(asio::use_awaitable);  // learns PIPELINING
    co_await s.async_login("alice", "wonderland", asio::use_awaitable);

    const auto messages = co_await s.async_list_uidl(asio::use_awaitable);
    std::printf("%zu messages, pipeline depth %zu\n", messages.size(), s.pipeline_depth());
    for (const auto& m : messages) {
        const std::string text = co_await s.async_retr(m.number, asio::use_awaitable);
        std::printf("  %3llu  %6zu octets  uid %s  %s\n", static_cast<unsigned long long>(m.number), text.size(),
                    m.uid.c_str(), text == expected[m.number - 1] ? "ok" : "DIFFERS");
        if (text != expected[m.number - 1]) throw std::runtime_error("message differs from the server's");
        co_await s.async_dele(m.number, asio::use_awaitable);
    }
    co_await s.async_quit(asio::use_awaitable);  // deletions take effect here
}

int main() {
    asio::io_context ioc;
    pop3::testing::server server(ioc.get_executor());
    const auto mail = pop3::testing::generate_messages({});
    server.add_account("alice", "wonderland", mail);
    if (auto ec = server.start()) {
        std::fprintf(stderr, "cannot start the test server: %s\n", ec.message().c_str());
        return 1;
    }
    int status = 1;
    asio::co_spawn(ioc, fetch_everything(std::to_string(server.port()), mail), [&](std::exception_ptr e) {
        status = 0;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::fprintf(stderr, "error: %s\n", ex.what());
                status = 1;
            }
        }
        server.stop();
    });
    ioc.run();
    std::printf("server now holds %zu messages\n", server.messages("alice").size());
    return status;
}
