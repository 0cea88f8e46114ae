// Every session operation against the test server, over TCP and TLS.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "../support/fetch_all.hpp"
#include "../support/run.hpp"
#include "../support/server_fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <thread>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

struct fixture : pop3::test::server_fixture {
    explicit fixture(testing::server_options options = {}, std::size_t count = 12)
        : server_fixture(options, make_spec(count)) {}
};

}  // namespace

TEST_CASE("a whole session: connect, CAPA, login, every command, QUIT") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        CHECK(s.state() == session_state::disconnected);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        CHECK(s.state() == session_state::authorization);
        CHECK(s.greeting().find("@pop3.test>") != std::string::npos);

        const capabilities caps = co_await s.async_capa(use_awaitable);
        CHECK(caps.pipelining);
        CHECK(caps.uidl);
        CHECK(s.pipeline_depth() == default_pipeline_depth);

        co_await s.async_login("alice", "wonderland", use_awaitable);
        CHECK(s.state() == session_state::transaction);

        const stat_info st = co_await s.async_stat(use_awaitable);
        CHECK(st.count == f.mail.size());
        std::uint64_t total = 0;
        for (const auto& m : f.mail) total += m.size();
        CHECK(st.octets == total);

        const auto list = co_await s.async_list(use_awaitable);
        REQUIRE(list.size() == f.mail.size());
        CHECK(list[3].number == 4);
        CHECK(list[3].octets == f.mail[3].size());
        const list_entry one = co_await s.async_list(5, use_awaitable);
        CHECK(one.octets == f.mail[4].size());

        const auto uids = co_await s.async_uidl(use_awaitable);
        CHECK(uids.size() == f.mail.size());
        CHECK(uids[0].uid == f.server.uids("alice")[0]);
        const uidl_entry u = co_await s.async_uidl(2, use_awaitable);
        CHECK(u.uid == f.server.uids("alice")[1]);

        const auto infos = co_await s.async_list_uidl(use_awaitable);
        REQUIRE(infos.size() == f.mail.size());
        CHECK(infos[6].octets == f.mail[6].size());
        CHECK(infos[6].uid == uids[6].uid);

        for (std::size_t i = 0; i < f.mail.size(); ++i) {
            const std::string m = co_await s.async_retr(i + 1, use_awaitable);
            CHECK(m == f.mail[i]);  // byte for byte, dot-stuffing undone
        }
        const std::string head = co_await s.async_top(1, 0, use_awaitable);
        CHECK(head == f.mail[0].substr(0, f.mail[0].find("\r\n\r\n") + 4));

        CHECK(co_await s.async_last(use_awaitable) == f.mail.size());
        co_await s.async_noop(use_awaitable);
        co_await s.async_dele(2, use_awaitable);
        co_await s.async_rset(use_awaitable);
        co_await s.async_dele(1, use_awaitable);
        co_await s.async_dele(3, use_awaitable);
        co_await s.async_quit(use_awaitable);
        CHECK(s.state() == session_state::update);
    });
    const auto deleted = f.server.deleted("alice");
    REQUIRE(deleted.size() == 2);
    CHECK(deleted[0] == f.mail[0]);
    CHECK(deleted[1] == f.mail[2]);
    CHECK(f.server.messages("alice").size() == f.mail.size() - 2);
}

TEST_CASE("DELE takes effect only at QUIT: a dropped session deletes nothing") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        co_await s.async_dele(1, use_awaitable);
        s.close();
    });
    f.ioc.run_for(std::chrono::milliseconds(50));
    CHECK(f.server.deleted("alice").empty());
    CHECK(f.server.messages("alice").size() == f.mail.size());
}

TEST_CASE("-ERR keeps the session going, with the server's text and response code") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        diagnostics diag;
        auto [ec] = co_await s.async_login("alice", "wrong", tuple_awaitable, &diag);
        CHECK(ec == error::server_refused);
        CHECK(!is_fatal(ec));
        CHECK(diag.code().kind == response_code_kind::auth);
        CHECK(diag.server_message() == "invalid user name or password");
        co_await s.async_login("alice", "wonderland", use_awaitable);
        auto [ec2, m] = co_await s.async_retr(999, tuple_awaitable, &diag);
        CHECK(ec2 == error::server_refused);
        CHECK(diag.server_message() == "no such message");
        CHECK(m.empty());
        CHECK(co_await s.async_retr(1, use_awaitable) == f.mail[0]);
    });
}

TEST_CASE("a command in the wrong state is refused with nothing sent") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        auto [ec0, st0] = co_await s.async_stat(tuple_awaitable);
        CHECK(ec0 == error::not_connected);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        const auto before = f.server.stats().commands;
        auto [ec, st] = co_await s.async_stat(tuple_awaitable);
        CHECK(ec == error::wrong_state);
        auto [ec2] = co_await s.async_dele(1, tuple_awaitable);
        CHECK(ec2 == error::wrong_state);
        CHECK(f.server.stats().commands == before);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        auto [ec3] = co_await s.async_login("alice", "wonderland", tuple_awaitable);
        CHECK(ec3 == error::wrong_state);
        CHECK(f.server.stats().commands == before + 2);
    });
}

TEST_CASE("no password crosses a connection without TLS unless allowed") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.plain_options();
        o.allow_plaintext_auth = false;
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        const auto before = f.server.stats().commands;
        auto [ec] = co_await s.async_login("alice", "wonderland", tuple_awaitable);
        CHECK(ec == error::plaintext_auth_refused);
        CHECK(f.server.stats().commands == before);
        CHECK(s.state() == session_state::authorization);
    });
}

TEST_CASE("APOP with the greeting's timestamp") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        auto [bad] = co_await s.async_apop("alice", "nope", tuple_awaitable);
        CHECK(bad == error::server_refused);
        co_await s.async_apop("alice", "wonderland", use_awaitable);
        CHECK(s.state() == session_state::transaction);
        CHECK((co_await s.async_stat(use_awaitable)).count == f.mail.size());
    });
}

TEST_CASE("APOP without a timestamp is refused locally") {
    testing::server_options so;
    so.apop = false;
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        auto [ec] = co_await s.async_apop("alice", "wonderland", tuple_awaitable);
        CHECK(ec == error::no_apop_timestamp);
    });
}

TEST_CASE("operations started together are queued, pipelined and complete in order") {
    fixture f({}, 40);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        std::vector<std::string> got(f.mail.size());
        std::vector<int> order;
        std::size_t pending = f.mail.size();
        for (std::size_t i = 0; i < f.mail.size(); ++i) {
            s.async_retr(i + 1, [&, i](error_code ec, std::string m) {
                CHECK(!ec);
                got[i] = std::move(m);
                order.push_back(static_cast<int>(i));
                --pending;
            });
        }
        while (pending != 0) {
            asio::steady_timer t(f.ioc, std::chrono::milliseconds(1));
            co_await t.async_wait(use_awaitable);
        }
        CHECK(got == f.mail);
        for (std::size_t i = 0; i < order.size(); ++i) CHECK(order[i] == static_cast<int>(i));
    });
}

TEST_CASE("pipelined and lock-step runs give byte-identical messages") {
    for (std::size_t depth : {std::size_t(1), std::size_t(3), std::size_t(0)}) {
        CAPTURE(depth);
        testing::server_options so;
        so.one_way_delay = std::chrono::milliseconds(1);
        fixture f(so, 30);
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session_options o = f.plain_options();
            o.pipeline.depth = depth;
            session s = co_await f.logged_in(o);
            CHECK(s.pipeline_depth() == (depth == 0 ? default_pipeline_depth : depth));
            const pop3::test::fetched got = co_await pop3::test::fetch_all(s, f.mail.size());
            REQUIRE_MESSAGE(!got.ec, got.ec.message());
            CHECK(got.bodies == f.mail);
        });
    }
}

TEST_CASE("fetching by UID, with one the server does not have") {
    fixture f({}, 10);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        const auto server_uids = f.server.uids("alice");
        std::vector<std::string> wanted{server_uids[7], "no-such-uid", server_uids[2]};
        std::map<std::string, std::string> bodies;
        std::vector<std::uint64_t> numbers;
        fetch_callbacks cb;
        cb.open = [&](const message_info& m) {
            numbers.push_back(m.number);
            body_sink sink;
            sink.write = [&bodies, uid = m.uid](std::string_view c) {
                bodies[uid].append(c);
                return error_code{};
            };
            return sink;
        };
        const auto missing = co_await s.async_fetch_uids(wanted, cb, use_awaitable);
        CHECK(missing == std::vector<std::string>{"no-such-uid"});
        CHECK(numbers == std::vector<std::uint64_t>{8, 3});
        CHECK(bodies[server_uids[7]] == f.mail[7]);
        CHECK(bodies[server_uids[2]] == f.mail[2]);
        CHECK(bodies.size() == 2);
    });
}

TEST_CASE("fetch callbacks see the size and UID the session learned") {
    fixture f({}, 4);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        co_await s.async_list_uidl(use_awaitable);
        std::vector<message_info> seen;
        fetch_callbacks cb;
        cb.done = [&](const message_info& m, error_code ec, const diagnostics&) {
            CHECK(!ec);
            seen.push_back(m);
        };
        std::vector<std::uint64_t> numbers{4, 1};
        co_await s.async_fetch(numbers, cb, use_awaitable);
        REQUIRE(seen.size() == 2);
        CHECK(seen[0].number == 4);
        CHECK(seen[0].octets == f.mail[3].size());
        CHECK(seen[0].uid == f.server.uids("alice")[3]);
        CHECK(seen[1].uid == f.server.uids("alice")[0]);
    });
}

TEST_CASE("a server without PIPELINING is driven lock-step") {
    testing::server_options so;
    so.pipelining = false;
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        CHECK(s.pipeline_depth() == 1);
        CHECK(co_await s.async_retr(2, use_awaitable) == f.mail[1]);
    });
}

TEST_CASE("-ERR in the middle of a batch belongs to its own message") {
    fixture f({}, 6);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        std::map<std::uint64_t, std::string> bodies;
        std::map<std::uint64_t, error_code> outcome;
        std::map<std::uint64_t, std::string> texts;
        fetch_callbacks cb;
        cb.open = [&](const pop3::message_info& m) {
            const std::uint64_t n = m.number;
            body_sink sink;
            sink.write = [&bodies, n](std::string_view c) {
                bodies[n].append(c);
                return error_code{};
            };
            return sink;
        };
        cb.done = [&](const message_info& m, error_code ec, const diagnostics& d) {
            const std::uint64_t n = m.number;
            outcome[n] = ec;
            texts[n] = d.server_message();
        };
        // (Named vectors: GCC 12 mishandles braced lists inside co_await.)
        std::vector<std::uint64_t> wanted{1, 2, 77, 3, 0, 4};
        co_await s.async_fetch(wanted, cb, use_awaitable);
        CHECK(!outcome[1]);
        CHECK(!outcome[4]);
        CHECK(outcome[77] == error::server_refused);
        CHECK(texts[77] == "no such message");
        CHECK(outcome[0] == error::invalid_message_number);
        CHECK(bodies[3] == f.mail[2]);
        CHECK(bodies.count(77) == 0);

        std::vector<std::uint64_t> doomed{1, 50, 2};
        auto results = co_await s.async_delete(doomed, use_awaitable);
        REQUIRE(results.size() == 3);
        CHECK(!results[0]);
        CHECK(results[1] == error::server_refused);
        CHECK(!results[2]);
        co_await s.async_quit(use_awaitable);
    });
    CHECK(f.server.deleted("alice").size() == 2);
}

TEST_CASE("streaming into an asynchronous sink with back-pressure") {
    testing::maildrop_spec spec;
    fixture f;
    std::string big = testing::generate_messages({1, 3u << 20, 0.0, 300, 4u << 20, 3, true, true})[0];
    f.server.add_account("bob", "builder", {big});
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("bob", "builder", use_awaitable);
        std::string got;
        std::size_t chunks = 0, max_chunk = 0;
        asio::steady_timer slow(f.ioc);
        body_sink sink;
        sink.async_write = [&](std::string_view chunk, asio::any_completion_handler<void(error_code)> done) {
            got.append(chunk);
            ++chunks;
            max_chunk = std::max(max_chunk, chunk.size());
            // Store later: the session must not read on meanwhile.
            slow.expires_after(std::chrono::microseconds(200));
            slow.async_wait([d = std::move(done)](error_code) mutable { std::move(d)(error_code{}); });
        };
        const std::uint64_t n = co_await s.async_retr(1, sink, use_awaitable);
        CHECK(n == big.size());
        CHECK(got == big);
        CHECK(chunks > 10);
        CHECK(max_chunk <= s.pipeline_depth() * 0 + 64 * 1024);  // bounded by the read size
    });
}

TEST_CASE("an asynchronous sink may call done before it returns: the session reads on in the same pass") {
    fixture f;
    std::string big = testing::generate_messages({1, 1u << 20, 0.0, 300, 2u << 20, 5, true, true})[0];
    f.server.add_account("bob", "builder", {big, f.mail[0], f.mail[1]});
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.plain_options());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_login("bob", "builder", use_awaitable);
        // Chunks alternate: taken at once (done inside the call), then
        // stored later (done from a timer). Order and bytes must hold.
        std::string got;
        std::size_t calls = 0, inline_calls = 0;
        bool in_call = false;
        asio::steady_timer later(f.ioc);
        body_sink sink;
        sink.async_write = [&](std::string_view chunk, asio::any_completion_handler<void(error_code)> done) {
            CHECK(!in_call);  // never re-entered from inside done
            got.append(chunk);
            if (++calls % 2 == 1) {
                ++inline_calls;
                in_call = true;
                std::move(done)(error_code{});
                in_call = false;
                return;
            }
            later.expires_after(std::chrono::microseconds(100));
            later.async_wait([d = std::move(done)](error_code) mutable { std::move(d)(error_code{}); });
        };
        CHECK(co_await s.async_retr(1, sink, use_awaitable) == big.size());
        CHECK(got == big);
        CHECK(inline_calls > 3);

        // An error given inline refuses that message only.
        body_sink refusing;
        refusing.async_write = [](std::string_view, asio::any_completion_handler<void(error_code)> done) {
            std::move(done)(error_code(boost::system::errc::no_space_on_device, boost::system::generic_category()));
        };
        auto [ec, n] = co_await s.async_retr(2, refusing, tuple_awaitable);
        CHECK(ec == boost::system::errc::no_space_on_device);
        CHECK(co_await s.async_retr(3, use_awaitable) == f.mail[1]);
        co_await s.async_quit(use_awaitable);
    });
}

TEST_CASE("a refusing sink drops its message, and the session goes on") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s = co_await f.logged_in(f.plain_options());
        body_sink sink;
        sink.write = [](std::string_view) { return error_code(boost::system::errc::no_space_on_device, boost::system::generic_category()); };
        auto [ec, n] = co_await s.async_retr(1, sink, tuple_awaitable);
        CHECK(ec == boost::system::errc::no_space_on_device);
        CHECK(co_await s.async_retr(2, use_awaitable) == f.mail[1]);
    });
}

TEST_CASE("a message over the whole-message cap is refused, the session goes on") {
    fixture f;
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.plain_options();
        o.max_message_size = 1000;
        session s = co_await f.logged_in(o);
        auto [ec, m] = co_await s.async_retr(1, tuple_awaitable);
        CHECK(ec == error::message_too_large);
        CHECK(m.empty());
        CHECK((co_await s.async_stat(use_awaitable)).count == f.mail.size());
    });
}

TEST_CASE("implicit TLS with a verified certificate") {
    testing::server_options so;
    so.tls = testing::server_options::tls_mode::implicit;
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o;
        o.mode = transport::implicit_tls;
        o.tls_context = f.server.client_tls_context();
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        CHECK(s.is_encrypted());
        co_await s.async_capa(use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);  // allowed: TLS
        for (std::size_t i = 0; i < f.mail.size(); ++i) CHECK(co_await s.async_retr(i + 1, use_awaitable) == f.mail[i]);
        auto infos = co_await s.async_list_uidl(use_awaitable);
        CHECK(infos.size() == f.mail.size());
        co_await s.async_dele(1, use_awaitable);
        co_await s.async_quit(use_awaitable);
    });
    CHECK(f.server.deleted("alice").size() == 1);
}

TEST_CASE("implicit TLS refuses a certificate the client does not trust, or for another name") {
    testing::server_options so;
    so.tls = testing::server_options::tls_mode::implicit;
    fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o;
        o.mode = transport::implicit_tls;
        o.tls_context = make_tls_context({});  // the system store: the test CA is not in it
        session s(f.ioc, o);
        auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec);
        CHECK(is_fatal(ec));
        CHECK(s.state() == session_state::failed);

        session_options o2;
        o2.mode = transport::implicit_tls;
        o2.tls_context = f.server.client_tls_context();
        o2.tls_server_name = "mail.example.org";  // the certificate is for localhost / 127.0.0.1
        session s2(f.ioc, o2);
        auto [ec2] = co_await s2.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec2);
    });
}

TEST_CASE("completion tokens: callback, deferred, use_future") {
    fixture f;
    session s(f.ioc, f.plain_options());
    bool connected = false;
    s.async_connect("127.0.0.1", f.port(), [&](error_code ec) {
        CHECK(!ec);
        connected = true;
    });
    while (!connected) f.ioc.run_one();
    auto op = s.async_login("alice", "wonderland", asio::deferred);
    bool logged_in = false;
    std::move(op)([&](error_code ec) {
        CHECK(!ec);
        logged_in = true;
    });
    while (!logged_in) f.ioc.run_one();

    auto guard = asio::make_work_guard(f.ioc);
    std::thread runner([&] { f.ioc.run(); });
    // Operations start on the session's executor; post the start there.
    std::promise<std::future<stat_info>> started;
    asio::post(f.ioc, [&] { started.set_value(s.async_stat(asio::use_future)); });
    const stat_info st = started.get_future().get().get();
    CHECK(st.count == f.mail.size());
    asio::post(f.ioc, [&] { f.server.stop(); s.close(); guard.reset(); f.ioc.stop(); });
    runner.join();
}

TEST_CASE("an idle session arms no timer: io_context::run returns when the operations are done") {
    fixture f;
    session_options o = f.plain_options(std::chrono::hours(1));
    o.connect_timeout = std::chrono::hours(1);
    session s(f.ioc, o);
    bool logged_in = false;
    s.async_connect("127.0.0.1", f.port(), [&](error_code ec) {
        REQUIRE(!ec);
        s.async_capa([&](error_code ec, capabilities) {
            REQUIRE(!ec);
            s.async_login("alice", "wonderland", [&](error_code ec) {
                logged_in = !ec;
                f.server.stop();  // the server's acceptor and connections go too
            });
        });
    });
    // With a timer left armed, run() would wait for the hour-long deadline.
    f.ioc.run_for(std::chrono::seconds(20));
    CHECK(logged_in);
    CHECK(f.ioc.stopped());  // ran out of work, not out of time
}
