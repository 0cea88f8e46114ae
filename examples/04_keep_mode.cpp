// Example 4: keep mode. Mail stays on the server; each poll fetches only
// the messages whose UIDs (UIDL) it has not seen. A real program keeps the
// set of seen UIDs durably (pop3fetch journals them) and forgets the UIDs
// the server no longer lists.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace asio = boost::asio;

// One poll: returns how many new messages it fetched.
asio::awaitable<std::size_t> poll(std::string port, std::set<std::string>& seen) {
    pop3::session_options options;
    options.allow_plaintext_auth = true;  // the test server speaks plain TCP on loopback
    options.tls = pop3::tls_policy::none;
    pop3::session s(co_await asio::this_coro::executor, options);
    co_await s.async_connect("127.0.0.1", port, asio::use_awaitable);
    const pop3::capabilities caps = co_await s.async_capa(asio::use_awaitable);
    if (!caps.uidl) throw std::runtime_error("no UIDL: keep mode cannot tell new messages from old");
    co_await s.async_login("alice", "wonderland", asio::use_awaitable);

    std::vector<std::uint64_t> wanted;
    std::set<std::string> listed;
    for (const auto& m : co_await s.async_list_uidl(asio::use_awaitable)) {
        listed.insert(m.uid);
        if (!seen.count(m.uid)) wanted.push_back(m.number);
    }
    // The new ones, pipelined: one batch, replies matched in order.
    std::size_t fetched = 0;
    pop3::fetch_callbacks cb;
    std::string body;
    cb.open = [&](const pop3::message_info&) {
        body.clear();
        pop3::body_sink sink;
        sink.write = [&](std::string_view chunk) {
            body.append(chunk);
            return pop3::error_code{};
        };
        return sink;
    };
    cb.done = [&](const pop3::message_info& m, pop3::error_code ec, const pop3::diagnostics&) {
        if (ec) return;  // not seen: it comes again next time
        std::printf("  new: message %llu, uid %s, %zu octets\n", static_cast<unsigned long long>(m.number),
                    m.uid.c_str(), body.size());
        seen.insert(m.uid);  // after storing it, never before
        ++fetched;
    };
    co_await s.async_fetch(wanted, cb, asio::use_awaitable);
    co_await s.async_quit(asio::use_awaitable);  // nothing was deleted
    std::erase_if(seen, [&](const std::string& uid) { return !listed.count(uid); });
    co_return fetched;
}

int main() {
    asio::io_context ioc;
    pop3::testing::server server(ioc.get_executor());
    auto mail = pop3::testing::generate_messages({});
    server.add_account("alice", "wonderland", mail);
    if (server.start()) return 1;
    const std::string port = std::to_string(server.port());

    std::set<std::string> seen;
    std::vector<std::size_t> counts;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            std::printf("first poll:\n");
            counts.push_back(co_await poll(port, seen));
            std::printf("second poll (nothing new):\n");
            counts.push_back(co_await poll(port, seen));
            pop3::testing::maildrop_spec more;
            more.count = 2;
            more.seed = 99;
            for (auto& m : pop3::testing::generate_messages(more)) mail.push_back(std::move(m));
            server.add_account("alice", "wonderland", mail);  // two messages arrive
            std::printf("third poll (two arrived):\n");
            counts.push_back(co_await poll(port, seen));
            server.stop();
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    ioc.run();
    std::printf("fetched %zu, %zu, %zu; the server still holds %zu\n", counts[0], counts[1], counts[2],
                server.messages("alice").size());
    const bool ok = counts == std::vector<std::size_t>{10, 0, 2} && server.messages("alice").size() == 12;
    return ok ? 0 : 1;
}
