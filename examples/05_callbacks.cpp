// Example 5: callbacks instead of coroutines. Every operation takes any
// Asio completion token; a plain callable is one. The session must outlive
// its operations, and callbacks run on the session's executor.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace asio = boost::asio;

int main() {
    asio::io_context ioc;
    pop3::testing::server server(ioc.get_executor());
    const auto mail = pop3::testing::generate_messages({});
    server.add_account("alice", "wonderland", mail);
    if (server.start()) return 1;

    pop3::session_options options;
    options.allow_plaintext_auth = true;  // the test server speaks plain TCP on loopback
    options.tls = pop3::tls_policy::none;
    pop3::session s(ioc, options);
    std::size_t matched = 0;
    int status = 1;
    auto fail = [&](const char* where, pop3::error_code ec) {
        std::fprintf(stderr, "%s: %s\n", where, ec.message().c_str());
        server.stop();
    };

    s.async_connect("127.0.0.1", std::to_string(server.port()), [&](pop3::error_code ec) {
        if (ec) return fail("connect", ec);
        s.async_capa([&](pop3::error_code ec, pop3::capabilities) {
            if (ec) return fail("CAPA", ec);
            s.async_login("alice", "wonderland", [&](pop3::error_code ec) {
                if (ec) return fail("login", ec);
                s.async_stat([&](pop3::error_code ec, pop3::stat_info st) {
                    if (ec) return fail("STAT", ec);
                    std::printf("%llu messages\n", static_cast<unsigned long long>(st.count));
                    // Started together, without waiting: pipelined, and the
                    // callbacks run in order.
                    for (std::uint64_t n = 1; n <= st.count; ++n)
                        s.async_retr(n, [&, n](pop3::error_code ec, std::string text) {
                            if (!ec && text == mail[n - 1]) ++matched;
                        });
                    s.async_quit([&](pop3::error_code ec) {
                        std::printf("%zu of %zu messages byte for byte; QUIT: %s\n", matched, mail.size(),
                                    ec ? ec.message().c_str() : "ok");
                        status = !ec && matched == mail.size() ? 0 : 1;
                        server.stop();
                    });
                });
            });
        });
    });
    ioc.run();
    return status;
}
