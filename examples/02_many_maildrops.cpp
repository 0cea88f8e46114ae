// Example 2: many maildrops at once from one thread.
//
// Starts the test server with generated maildrops and a network delay,
// then fetches every message of every maildrop with up to C sessions at
// once, first pipelined, then lock-step (one command in flight), and says
// what pipelining saved. Every message is checked byte for byte.
//
//   example_02_many_maildrops [maildrops=200] [messages=15] [one-way-ms=5] [concurrency=64]

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

namespace asio = boost::asio;

struct totals {
    std::size_t accounts = 0, failed = 0, messages = 0, wrong = 0;
    std::uint64_t bytes = 0;
};

asio::awaitable<void> drain(pop3::session_options options, std::string port, std::string user,
                            const std::vector<std::string>& expected, totals& t) {
    pop3::session s(co_await asio::this_coro::executor, options);
    co_await s.async_connect("127.0.0.1", port, asio::use_awaitable);
    co_await s.async_capa(asio::use_awaitable);
    co_await s.async_login(user, "secret", asio::use_awaitable);
    const auto listing = co_await s.async_list(asio::use_awaitable);
    std::vector<std::uint64_t> numbers;
    for (const auto& e : listing) numbers.push_back(e.number);
    std::vector<std::string> got(listing.size() + 1);
    pop3::fetch_callbacks cb;
    cb.open = [&](const pop3::message_info& m) {
            const std::uint64_t n = m.number;
        pop3::body_sink sink;
        sink.write = [&got, n](std::string_view chunk) {
            got[n].append(chunk);
            return pop3::error_code{};
        };
        return sink;
    };
    co_await s.async_fetch(numbers, cb, asio::use_awaitable);
    for (std::size_t n = 1; n < got.size(); ++n) {
        ++t.messages;
        t.bytes += got[n].size();
        t.wrong += got[n] != expected[n - 1];
    }
    co_await s.async_quit(asio::use_awaitable);
}

double run(std::size_t maildrops, std::size_t concurrency, std::size_t depth, unsigned short port,
           const std::vector<std::string>& mail, totals& t) {
    asio::io_context ioc;
    pop3::session_options o;
    o.allow_plaintext_auth = true;  // loopback test server
    o.tls = pop3::tls_policy::none;
    o.pipeline.depth = depth;
    std::size_t next = 0, running = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::function<void()> launch = [&] {
        while (running < concurrency && next < maildrops) {
            ++running;
            const std::string user = "user" + std::to_string(next++);
            asio::co_spawn(ioc, drain(o, std::to_string(port), user, mail, t), [&](std::exception_ptr e) {
                --running;
                ++t.accounts;
                if (e) ++t.failed;
                launch();
            });
        }
    };
    launch();
    ioc.run();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main(int argc, char** argv) {
    const std::size_t maildrops = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200;
    const std::size_t per_drop = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 15;
    const int one_way_ms = argc > 3 ? std::atoi(argv[3]) : 5;
    const std::size_t concurrency = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 64;

    // The server runs on its own thread, as a remote server would.
    asio::io_context server_ioc;
    pop3::testing::server_options so;
    so.one_way_delay = std::chrono::milliseconds(one_way_ms);
    pop3::testing::server server(server_ioc.get_executor(), so);
    pop3::testing::maildrop_spec spec;
    spec.count = per_drop;
    const auto mail = pop3::testing::generate_messages(spec);
    for (std::size_t i = 0; i < maildrops; ++i) server.add_account("user" + std::to_string(i), "secret", mail);
    if (auto ec = server.start()) {
        std::fprintf(stderr, "cannot start the test server: %s\n", ec.message().c_str());
        return 1;
    }
    auto guard = asio::make_work_guard(server_ioc);
    std::thread server_thread([&] { server_ioc.run(); });

    std::printf("test server on 127.0.0.1:%u: %zu maildrops x %zu messages, %d ms each way\n", server.port(),
                maildrops, per_drop, one_way_ms);
    totals piped, lockstep;
    const double t_piped = run(maildrops, concurrency, 0, server.port(), mail, piped);
    const double t_lock = run(maildrops, concurrency, 1, server.port(), mail, lockstep);

    auto report = [&](const char* name, const totals& t, double seconds) {
        std::printf("%-22s %5zu accounts (%zu failed)  %6zu messages  %7.1f MB  %6.2f s  %8.0f msg/s%s\n", name,
                    t.accounts, t.failed, t.messages, static_cast<double>(t.bytes) / 1e6, seconds,
                    static_cast<double>(t.messages) / seconds, t.wrong ? "  WRONG BYTES" : "");
    };
    report("pipelined (auto depth)", piped, t_piped);
    report("lock-step (depth 1)", lockstep, t_lock);
    std::printf("pipelining saved %.2f s (%.1fx faster), %zu sessions at a time on one thread\n", t_lock - t_piped,
                t_lock / t_piped, concurrency);

    asio::post(server_ioc, [&] {
        server.stop();
        guard.reset();
    });
    server_thread.join();
    const bool ok = piped.failed + lockstep.failed + piped.wrong + lockstep.wrong == 0 &&
                    piped.messages == maildrops * per_drop && lockstep.messages == maildrops * per_drop;
    return ok ? 0 : 1;
}
