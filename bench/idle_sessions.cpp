// The client's heap per idle, logged-in session: N sessions connect, log in
// and stay idle, all from one thread. The test server runs in a child
// process, so the heap measured (glibc mallinfo2) is the client's alone.
//
//   bench_idle_sessions [sessions=1000]

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "support/server_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>

#include <cstdio>
#include <memory>

namespace asio = boost::asio;

int main(int argc, char** argv) {
    const std::size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
    pop3::bench::raise_fd_limit();
    pop3::testing::maildrop_spec spec;
    spec.count = 10;
    const auto messages = pop3::testing::generate_messages(spec);
    pop3::bench::server_process server({}, [&](pop3::testing::server& s) {
        for (std::size_t i = 0; i < count; ++i) s.add_account("user" + std::to_string(i), "secret", messages);
    });

    asio::io_context ioc;
    pop3::session_options o;
    o.allow_plaintext_auth = true;  // loopback test server
    o.tls = pop3::tls_policy::none;
    std::vector<std::unique_ptr<pop3::session>> sessions;
    sessions.reserve(count);

    // Warm up what is allocated once per process (resolver thread, TLS-free
    // OpenSSL state, Asio's per-thread caches) with one session.
    auto login = [&](pop3::session& s, std::size_t i, std::size_t& done, std::size_t& failed) {
        asio::co_spawn(
            ioc,
            [&, i]() -> asio::awaitable<void> {
                co_await s.async_connect("127.0.0.1", std::to_string(server.port()), asio::use_awaitable);
                co_await s.async_capa(asio::use_awaitable);
                co_await s.async_login("user" + std::to_string(i), "secret", asio::use_awaitable);
                co_await s.async_stat(asio::use_awaitable);
            },
            [&](std::exception_ptr e) {
                ++done;
                if (e) ++failed;
            });
    };
    {
        std::size_t done = 0, failed = 0;
        pop3::session warm(ioc, o);
        login(warm, 0, done, failed);
        while (done == 0) ioc.run_one();
        warm.close();
        ioc.poll();
        ioc.restart();  // it ran out of work: a stopped io_context runs nothing
    }
    malloc_trim(0);
    const auto before = mallinfo2();
    const long rss_before = pop3::bench::peak_rss_kib();
    std::size_t done = 0, failed = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < count; ++i) {
        sessions.push_back(std::make_unique<pop3::session>(ioc, o));
        login(*sessions.back(), i, done, failed);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (done < count && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(std::chrono::milliseconds(100));
    ioc.poll();  // let completions and coroutine frames go
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto after = mallinfo2();
    std::size_t logged_in = 0;
    for (const auto& s : sessions) logged_in += s->state() == pop3::session_state::transaction;

    const double per_session = static_cast<double>(after.uordblks - before.uordblks) / static_cast<double>(count);
    std::printf("%zu sessions logged in and idle (%zu failed) in %.2f s, one thread\n", logged_in, failed, seconds);
    std::printf("client heap per idle session: %.0f bytes (%.1f KiB)\n", per_session, per_session / 1024);
    std::printf("client peak RSS: %ld KiB (%ld KiB before the sessions)\n", pop3::bench::peak_rss_kib(), rss_before);
    return logged_in == count ? 0 : 1;
}
