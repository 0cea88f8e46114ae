// Pipelining under network delay: one maildrop of 1,000 messages of about
// 4 KiB, fetched whole (connect, CAPA, login, RETR of every message, QUIT)
// at several pipeline depths, with the test server modelling a delay each
// way. Prints each run against the model
//   (round trips for greeting and login + ceil(messages / N) + 1) x RTT
//   + transfer time (the same fetch at 0 ms delay)
// and fails if a run fetched wrong bytes.
//
//   bench_pipelining_delay [messages=1000] [one-way-ms=10] [depths=1,4,16,64,256,auto]

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "support/server_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cmath>
#include <cstdio>
#include <sstream>

namespace asio = boost::asio;

namespace {

struct run_result {
    double seconds = 0;
    std::uint64_t bytes = 0;
    bool correct = false;
};

run_result fetch_all(unsigned short port, std::size_t depth, const std::vector<std::string>& expected) {
    asio::io_context ioc;
    run_result result;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            pop3::session_options o;
            o.allow_plaintext_auth = true;  // loopback test server
            o.tls = pop3::tls_policy::none;
            o.pipeline.depth = depth;
            pop3::session s(ioc, o);
            const auto t0 = std::chrono::steady_clock::now();
            co_await s.async_connect("127.0.0.1", std::to_string(port), asio::use_awaitable);
            co_await s.async_capa(asio::use_awaitable);
            co_await s.async_login("bench", "secret", asio::use_awaitable);
            std::vector<std::string> got(expected.size());
            std::vector<std::uint64_t> numbers;
            for (std::size_t i = 1; i <= expected.size(); ++i) numbers.push_back(i);
            pop3::fetch_callbacks cb;
            cb.open = [&](const pop3::message_info& m) {
            const std::uint64_t n = m.number;
                pop3::body_sink sink;
                sink.write = [&got, n](std::string_view chunk) {
                    got[n - 1].append(chunk);
                    return pop3::error_code{};
                };
                return sink;
            };
            co_await s.async_fetch(numbers, cb, asio::use_awaitable);
            co_await s.async_quit(asio::use_awaitable);
            result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            result.correct = got == expected;
            for (const auto& m : got) result.bytes += m.size();
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    ioc.run();
    return result;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
    const int one_way_ms = argc > 2 ? std::atoi(argv[2]) : 10;
    std::vector<std::size_t> depths{1, 4, 16, 64, 256, 0};
    if (argc > 3) {
        depths.clear();
        std::stringstream ss(argv[3]);
        for (std::string item; std::getline(ss, item, ',');)
            depths.push_back(item == "auto" ? 0 : std::stoul(item));  // 0: automatic
    }

    pop3::testing::maildrop_spec spec;
    spec.count = count;
    spec.median_size = 4096;
    spec.size_sigma = 0.25;
    const auto messages = pop3::testing::generate_messages(spec);
    auto fill = [&](pop3::testing::server& s) { s.add_account("bench", "secret", messages); };

    const double rtt = 2.0 * one_way_ms / 1000.0;
    std::printf("%zu messages, %d ms each way (RTT %.0f ms)\n", count, one_way_ms, rtt * 1000);
    std::printf("%6s %10s %10s %10s %8s %10s\n", "depth", "wall s", "model s", "transfer s", "ratio", "msg/s");
    int failures = 0;
    for (std::size_t depth : depths) {
        double transfer = 0;
        {
            pop3::bench::server_process fast({}, fill);
            transfer = fetch_all(fast.port(), depth, messages).seconds;
        }
        pop3::testing::server_options delayed;
        delayed.one_way_delay = std::chrono::milliseconds(one_way_ms);
        pop3::bench::server_process server(delayed, fill);
        const run_result r = fetch_all(server.port(), depth, messages);
        if (!r.correct) {
            std::printf("depth %zu (0 = auto): WRONG BYTES\n", depth);
            ++failures;
            continue;
        }
        // Greeting (with the TCP connect), CAPA, and the login: USER and PASS
        // share a round trip when the window holds both.
        const std::size_t n = depth == 0 ? pop3::default_pipeline_depth : depth;
        const double login_trips = 2 + (n >= 2 ? 1 : 2);
        const double batches = std::ceil(static_cast<double>(count) / static_cast<double>(n));
        const double model = (login_trips + batches + 1) * rtt + transfer;
        std::printf("%6s %10.3f %10.3f %10.3f %8.2f %10.0f\n",
                    depth == 0 ? "auto" : std::to_string(depth).c_str(), r.seconds, model, transfer,
                    r.seconds / model, static_cast<double>(count) / r.seconds);
    }
    return failures == 0 ? 0 : 1;
}
