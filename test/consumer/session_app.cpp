// A consumer of the installed library: the loopback test server and a
// session against it, with coroutines. Built by test/consumer/run.sh with
// pkg-config and with CMake (find_package(pop3 CONFIG)).

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>

namespace asio = boost::asio;

int main() {
    asio::io_context ioc;
    pop3::testing::server server(ioc.get_executor());
    server.add_account("alice", "wonderland", pop3::testing::generate_messages({}));
    if (server.start()) return 1;

    std::uint64_t count = 0;
    std::string first;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            pop3::session_options o;
            o.tls = pop3::tls_policy::none;  // loopback, a server this program started
            o.allow_plaintext_auth = true;
            pop3::session s(ioc, o);
            co_await s.async_connect("127.0.0.1", std::to_string(server.port()), asio::use_awaitable);
            co_await s.async_capa(asio::use_awaitable);
            co_await s.async_login("alice", "wonderland", asio::use_awaitable);
            count = (co_await s.async_stat(asio::use_awaitable)).count;
            first = co_await s.async_retr(1, asio::use_awaitable);
            co_await s.async_quit(asio::use_awaitable);
            server.stop();
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    ioc.run();
    const bool ok = count == server.messages("alice").size() && first == server.messages("alice")[0];
    std::printf("session_app: %llu messages, first %zu octets: %s\n", static_cast<unsigned long long>(count),
                first.size(), ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
