// Login latency: the time from starting to connect to the reply to the
// first TRANSACTION command (STAT), over sequential logins, for each way of
// logging in: lock-step USER then PASS (no CAPA: depth 1), USER and PASS
// pipelined after CAPA advertised PIPELINING, each with and without
// TCP_QUICKACK. Against the built-in test server, or any server:
//
//   bench_login_latency [logins=200]
//   bench_login_latency LOGINS HOST PORT USER PASSWORD

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "support/server_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>

namespace asio = boost::asio;

int main(int argc, char** argv) {
    const std::size_t logins = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200;
    std::string host = "127.0.0.1", port, user = "bench", password = "secret";
    std::optional<pop3::bench::server_process> server;
    if (argc > 5) {
        host = argv[2];
        port = argv[3];
        user = argv[4];
        password = argv[5];
    } else {
        server.emplace(pop3::testing::server_options{}, [](pop3::testing::server& s) {
            s.add_account("bench", "secret", pop3::testing::generate_messages({}));
        });
        port = std::to_string(server->port());
    }

    struct mode {
        const char* name;
        bool capa;
        bool quickack;
    };
    const mode modes[] = {
        {"lock-step, quickack", false, true},
        {"lock-step, no quickack", false, false},
        {"pipelined, quickack", true, true},
        {"pipelined, no quickack", true, false},
    };
    std::printf("%zu logins against %s:%s (connect -> STAT reply), milliseconds\n", logins, host.c_str(),
                port.c_str());
    std::printf("%-24s %8s %8s %8s %8s\n", "login", "median", "p90", "max", "failed");
    for (const mode& m : modes) {
        std::vector<double> ms;
        std::size_t failed = 0;
        asio::io_context ioc;
        for (std::size_t i = 0; i < logins; ++i) {
            asio::co_spawn(
                ioc,
                [&]() -> asio::awaitable<void> {
                    pop3::session_options o;
                    o.allow_plaintext_auth = true;  // a loopback server of the bench's own
                    o.tls = pop3::tls_policy::none;
                    o.tcp_quickack = m.quickack;
                    pop3::session s(ioc, o);
                    const auto t0 = std::chrono::steady_clock::now();
                    co_await s.async_connect(host, port, asio::use_awaitable);
                    if (m.capa) co_await s.async_capa(asio::use_awaitable);
                    co_await s.async_login(user, password, asio::use_awaitable);
                    co_await s.async_stat(asio::use_awaitable);
                    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
                    co_await s.async_quit(asio::use_awaitable);
                },
                [&](std::exception_ptr e) { failed += e != nullptr; });
            ioc.run();
            ioc.restart();
        }
        std::sort(ms.begin(), ms.end());
        if (ms.empty()) {
            std::printf("%-24s all failed\n", m.name);
            continue;
        }
        std::printf("%-24s %8.2f %8.2f %8.2f %8zu\n", m.name, ms[ms.size() / 2], ms[ms.size() * 9 / 10], ms.back(),
                    failed);
    }
    return 0;
}
