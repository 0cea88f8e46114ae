// The poller on a swarm: N maildrops x M messages of about 4 KiB, a delay
// each way, C sessions at once, one thread. The test server runs in a child
// process. Prints wall time against the ideal: ceil(N / C) batches of one
// session's round trips (greeting, CAPA, login, LIST+UIDL, the RETRs, the
// DELEs after the last commit, QUIT: 7; the transfer, a few ms of loopback
// a batch, is left out), the client's peak RSS and CPU time per message, and
// the server's CPU. Fails when a message arrived wrong or an account failed.
//
//   bench_poller_swarm [maildrops=10000] [messages=10] [one-way-ms=10] [concurrency=1000]

#include <pop3/poller.hpp>
#include <pop3/testing/server.hpp>

#include "support/server_process.hpp"

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace asio = boost::asio;

int main(int argc, char** argv) {
    const std::size_t maildrops = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000;
    const std::size_t per_drop = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10;
    const int one_way_ms = argc > 3 ? std::atoi(argv[3]) : 10;
    const std::size_t concurrency = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1000;
    pop3::bench::raise_fd_limit();

    pop3::testing::maildrop_spec spec;
    spec.count = per_drop;
    spec.median_size = 4096;
    spec.size_sigma = 0.2;
    const auto mail = pop3::testing::generate_messages(spec);
    std::uint64_t drop_octets = 0;
    for (const auto& m : mail) drop_octets += m.size();

    pop3::testing::server_options so;
    so.one_way_delay = std::chrono::milliseconds(one_way_ms);
    so.sasl = {};  // USER/PASS: one round trip and no PBKDF2 on either side
    pop3::bench::server_process server(so, [&](pop3::testing::server& s) {
        for (std::size_t i = 0; i < maildrops; ++i) s.add_account(std::string("u").append(std::to_string(i)), "pw", mail);
    });

    asio::io_context ioc;
    std::uint64_t messages = 0, bytes = 0, wrong = 0, failed_accounts = 0;
    pop3::message_handler handler;
    // Each message is checked as it streams in, against the bytes the
    // server was given: the bench keeps no copy, as a client writing to
    // disk would not, so its CPU is the library's and not a buffer's.
    struct check {
        std::uint64_t offset = 0;
        bool same = true;
    };
    struct key_hash {
        std::size_t operator()(const std::pair<const void*, std::uint64_t>& k) const noexcept {
            return std::hash<const void*>()(k.first) * 31 + k.second;
        }
    };
    std::unordered_map<std::pair<const void*, std::uint64_t>, check, key_hash> open;  // account, message
    handler.open = [&](const pop3::account& a, const pop3::message_info& m) {
        check& c = open[{&a, m.number}];
        c = check{};
        const std::string& expected = mail[m.number - 1];
        pop3::body_sink sink;
        sink.write = [&c, &expected](std::string_view chunk) {
            c.same = c.same && expected.size() - std::min<std::uint64_t>(c.offset, expected.size()) >= chunk.size() &&
                     std::string_view(expected).substr(c.offset, chunk.size()) == chunk;
            c.offset += chunk.size();
            return pop3::error_code{};
        };
        return sink;
    };
    handler.done = [&](const pop3::account& a, const pop3::message_info& m, pop3::error_code ec,
                       asio::any_completion_handler<void(pop3::error_code)> committed) {
        auto it = open.find({&a, m.number});
        if (!ec && it != open.end()) {
            ++messages;
            bytes += it->second.offset;
            wrong += !it->second.same || it->second.offset != mail[m.number - 1].size();
        }
        if (it != open.end()) open.erase(it);
        std::move(committed)(ec);
    };
    pop3::poller_options o;
    o.max_sessions = concurrency;
    o.max_sessions_per_host = 0;
    o.on_account_done = [&](const pop3::account_outcome& out) { failed_accounts += out.ec ? 1 : 0; };
    pop3::poller p(ioc.get_executor(), handler, o);
    for (std::size_t i = 0; i < maildrops; ++i) {
        pop3::account a;
        a.id = "u" + std::to_string(i);
        a.host = "127.0.0.1";
        a.port = std::to_string(server.port());
        a.options.tls = pop3::tls_policy::none;  // the bench's own loopback server
        a.options.allow_plaintext_auth = true;
        a.creds.user = a.id;
        a.creds.password = "pw";
        p.add(std::move(a));
    }
    const double cpu0 = pop3::bench::cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    bool done = false;
    p.async_run([&](pop3::error_code) { done = true; });
    while (!done) ioc.run_one();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = pop3::bench::cpu_seconds() - cpu0;
    server.stop();

    const double rtt = 2.0 * one_way_ms / 1000.0;
    const double batches = std::ceil(static_cast<double>(maildrops) / static_cast<double>(concurrency));
    const double ideal = batches * 7 * rtt;
    std::printf("%zu maildrops x %zu messages (%.1f MB), %d ms each way, %zu sessions at once, one thread\n",
                maildrops, per_drop, static_cast<double>(drop_octets * maildrops) / 1e6, one_way_ms, concurrency);
    std::printf("wall %.2f s, ideal %.2f s (%.0f batches x 7 round trips), ratio %.2f\n", wall, ideal, batches,
                ideal > 0 ? wall / ideal : 0.0);
    std::printf("%llu messages, %.1f MB, %.0f msg/s; client CPU %.2f s (%.1f us per message); client peak RSS %ld KiB; "
                "server CPU %.2f s serving (%.2f s filling its maildrops before)\n",
                static_cast<unsigned long long>(messages), static_cast<double>(bytes) / 1e6,
                static_cast<double>(messages) / wall, cpu, cpu / static_cast<double>(std::max<std::uint64_t>(messages, 1)) * 1e6,
                pop3::bench::peak_rss_kib(), server.server_cpu_seconds(), server.server_setup_cpu_seconds());
    std::printf("accounts failed: %llu, messages wrong: %llu\n", static_cast<unsigned long long>(failed_accounts),
                static_cast<unsigned long long>(wrong));
    return failed_accounts == 0 && wrong == 0 && messages == maildrops * per_drop ? 0 : 1;
}
