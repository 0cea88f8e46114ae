// The poller against the test server: many accounts, mixed faults, limits.

#include <pop3/poller.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <doctest/doctest.h>

#include <future>
#include <map>
#include <set>
#include <thread>

namespace asio = boost::asio;
using namespace pop3;

namespace {

// What the application stored, per account and message.
struct store {
    std::map<std::string, std::map<std::uint64_t, std::string>> bodies;
    std::map<std::string, std::map<std::uint64_t, std::string>> committed;
    std::vector<std::string> done_order;
    std::map<std::string, account_outcome> outcomes;
    std::uint64_t open_bytes = 0, max_open_bytes = 0;
    std::function<error_code(const account&, const message_info&)> refuse;

    message_handler handler(asio::io_context* delay_commit = nullptr) {
        message_handler h;
        h.open = [this](const account& a, const message_info& m) {
            open_bytes += m.octets;
            max_open_bytes = std::max(max_open_bytes, open_bytes);
            bodies[a.id][m.number].clear();
            body_sink sink;
            sink.write = [this, id = a.id, n = m.number](std::string_view chunk) {
                bodies[id][n].append(chunk);
                return error_code{};
            };
            return sink;
        };
        h.done = [this, delay_commit](const account& a, const message_info& m, error_code ec,
                                      asio::any_completion_handler<void(error_code)> committed) {
            error_code result = ec;
            if (!ec && refuse) result = refuse(a, m);
            if (!result) this->committed[a.id][m.number] = bodies[a.id][m.number];
            auto finish = [this, octets = m.octets, result, c = std::move(committed)]() mutable {
                open_bytes -= octets;
                std::move(c)(result);
            };
            if (delay_commit == nullptr) return finish();
            auto t = std::make_shared<asio::steady_timer>(*delay_commit, std::chrono::milliseconds(2));
            t->async_wait([t, f = std::move(finish)](error_code) mutable { f(); });
        };
        return h;
    }

    poller_options options() {
        poller_options o;
        o.retry.base = std::chrono::milliseconds(20);
        o.retry.max = std::chrono::milliseconds(100);
        o.on_account_done = [this](const account_outcome& out) {
            outcomes[out.account_id] = out;
            done_order.push_back(out.account_id);
        };
        return o;
    }
};

account make_account(const testing::server& server, const std::string& user, const std::string& password,
                     std::string host = "127.0.0.1") {
    account a;
    a.id = user + "@" + host;
    a.host = std::move(host);
    a.port = std::to_string(server.port());
    a.options.tls = tls_policy::none;          // the loopback test server speaks plain TCP
    a.options.allow_plaintext_auth = true;
    a.options.reply_timeout = std::chrono::milliseconds(300);
    a.creds.user = user;
    a.creds.password = password;
    return a;
}

void run_until(asio::io_context& ioc, const bool& done, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(std::chrono::milliseconds(50));
    REQUIRE_MESSAGE(done, "the poller did not finish in time");
}

testing::maildrop_spec spec(std::size_t count, std::size_t size, std::uint64_t seed) {
    testing::maildrop_spec s;
    s.count = count;
    s.median_size = size;
    s.size_sigma = 0.3;
    s.seed = seed;
    return s;
}

}  // namespace

TEST_CASE("many accounts with mixed faults: each outcome right, the healthy not held up") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    std::map<std::string, std::vector<std::string>> mail;
    for (int i = 0; i < 20; ++i) {
        const std::string user = "good" + std::to_string(i);
        mail[user] = testing::generate_messages(spec(6, 3000, i + 1));
        server.add_account(user, "pw", mail[user]);
    }
    testing::fault_plan in_use;
    in_use.refuse_logins = 1;
    in_use.refuse_code = "IN-USE";
    mail["busy"] = testing::generate_messages(spec(3, 3000, 100));
    server.add_account("busy", "pw", mail["busy"], in_use);
    testing::fault_plan perm;
    perm.refuse_logins = 100;
    perm.refuse_code = "SYS/PERM";
    server.add_account("gone", "pw", testing::generate_messages(spec(3, 3000, 101)), perm);
    server.add_account("locked", "right", testing::generate_messages(spec(3, 3000, 102)));
    testing::fault_plan drop;
    drop.drop_after_bytes = 5000;
    server.add_account("dropper", "pw", testing::generate_messages(spec(3, 4000, 103)), drop);
    testing::fault_plan stall;
    stall.stall_at_command = 5;
    server.add_account("staller", "pw", testing::generate_messages(spec(3, 3000, 104)), stall);
    REQUIRE(!server.start());

    store st;
    poller_options o = st.options();
    o.max_sessions = 8;
    poller p(ioc.get_executor(), st.handler(), o);
    for (const char* broken : {"staller", "dropper"}) p.add(make_account(server, broken, "pw"));
    for (int i = 0; i < 20; ++i) p.add(make_account(server, "good" + std::to_string(i), "pw"));
    p.add(make_account(server, "busy", "pw"));
    p.add(make_account(server, "gone", "pw"));
    p.add(make_account(server, "locked", "wrong"));  // bad password
    bool done = false;
    error_code result;
    p.async_run([&](error_code ec) {
        result = ec;
        done = true;
    });
    run_until(ioc, done);
    CHECK(!result);

    for (int i = 0; i < 20; ++i) {
        const std::string user = "good" + std::to_string(i);
        const account_outcome& out = st.outcomes[user + "@127.0.0.1"];
        CAPTURE(user);
        CHECK(!out.ec);
        CHECK(out.attempts == 1);
        CHECK(out.messages == 6);
        CHECK(out.deleted == 6);
        CHECK(server.messages(user).empty());
        for (std::size_t n = 0; n < 6; ++n) CHECK(st.committed[user + "@127.0.0.1"][n + 1] == mail[user][n]);
    }
    const auto& busy = st.outcomes["busy@127.0.0.1"];
    CHECK(!busy.ec);  // [IN-USE] once, then fine
    REQUIRE(busy.retries.size() == 1);
    CHECK(busy.retries[0].code.kind == response_code_kind::in_use);
    CHECK(busy.messages == 3);

    const auto& gone = st.outcomes["gone@127.0.0.1"];
    CHECK(gone.ec == error::server_refused);
    CHECK(gone.diag.code().kind == response_code_kind::sys_perm);
    CHECK(gone.attempts == 1);  // [SYS/PERM]: not retried

    const auto& locked = st.outcomes["locked@127.0.0.1"];
    CHECK(locked.ec == error::server_refused);
    CHECK(locked.diag.code().kind == response_code_kind::auth);
    CHECK(locked.attempts == 1);
    CHECK(locked.diag.server_message() == "authentication failed");  // SCRAM-SHA-256, the strongest offered

    const auto& dropper = st.outcomes["dropper@127.0.0.1"];
    // The server closes inside a message. If a DELE for an earlier message
    // reached it unread, its close is a reset rather than an EOF.
    CHECK((dropper.ec == error::eof_in_body || dropper.ec == asio::error::connection_reset));
    CHECK(dropper.attempts == 3);
    CHECK(dropper.retries.size() == 2);
    CHECK(server.messages("dropper").size() == 3);  // no QUIT ever: nothing deleted

    const auto& staller = st.outcomes["staller@127.0.0.1"];
    CHECK(staller.ec == error::timeout);
    CHECK(staller.attempts == 3);

    // The broken accounts started first, yet every healthy one finished
    // before the stalled one gave up.
    const auto staller_pos = std::find(st.done_order.begin(), st.done_order.end(), "staller@127.0.0.1");
    for (int i = 0; i < 20; ++i)
        CHECK(std::find(st.done_order.begin(), staller_pos, "good" + std::to_string(i) + "@127.0.0.1") != staller_pos);
}

TEST_CASE("limits: global sessions, sessions per host, bytes in flight") {
    asio::io_context ioc;
    testing::server a(ioc.get_executor());
    testing::server_options b_opts;
    b_opts.address = "127.0.0.2";
    testing::server b(ioc.get_executor(), b_opts);
    for (int i = 0; i < 12; ++i) {
        a.add_account("a" + std::to_string(i), "pw", testing::generate_messages(spec(4, 10000, i + 1)));
        b.add_account("b" + std::to_string(i), "pw", testing::generate_messages(spec(4, 10000, i + 50)));
    }
    REQUIRE(!a.start());
    REQUIRE(!b.start());
    store st;
    poller_options o = st.options();
    o.max_sessions = 5;
    o.max_sessions_per_host = 3;
    o.max_bytes_in_flight = 30000;
    poller p(ioc.get_executor(), st.handler(&ioc), o);
    for (int i = 0; i < 12; ++i) {
        p.add(make_account(a, "a" + std::to_string(i), "pw"));
        p.add(make_account(b, "b" + std::to_string(i), "pw", "127.0.0.2"));
    }
    bool done = false;
    p.async_run([&](error_code) { done = true; });
    run_until(ioc, done);
    CHECK(st.outcomes.size() == 24);
    for (const auto& [id, out] : st.outcomes) CHECK_MESSAGE(!out.ec, id);
    const poller_stats s = p.stats();
    CHECK(s.peak_sessions <= 5);
    CHECK(s.peak_sessions >= 2);
    CHECK(s.peak_sessions_one_host <= 3);
    CHECK(a.stats().peak_active <= 3);
    CHECK(b.stats().peak_active <= 3);
    // Bytes fetched and not yet committed: never over the budget, except a
    // single message alone (none here is larger than the budget).
    CHECK(s.peak_bytes_in_flight <= 30000);
    CHECK(st.max_open_bytes <= 30000);
    CHECK(s.bytes_in_flight == 0);
}

TEST_CASE("only committed messages are deleted; keep mode and select") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    const auto mail = testing::generate_messages(spec(5, 2000, 9));
    server.add_account("refuser", "pw", mail);
    server.add_account("keeper", "pw", mail);
    REQUIRE(!server.start());
    store st;
    st.refuse = [](const account& a, const message_info& m) {
        return a.creds.user == "refuser" && m.number == 2
                   ? error_code(boost::system::errc::no_space_on_device, boost::system::generic_category())
                   : error_code{};
    };
    poller p(ioc.get_executor(), st.handler(), st.options());
    p.add(make_account(server, "refuser", "pw"));
    account keeper = make_account(server, "keeper", "pw");
    keeper.keep = true;
    keeper.select = [](const std::vector<message_info>& listing) {
        std::vector<std::uint64_t> odd;
        for (const auto& m : listing)
            if (m.number % 2 == 1) odd.push_back(m.number);
        return odd;
    };
    p.add(keeper);
    bool done = false;
    p.async_run([&](error_code) { done = true; });
    run_until(ioc, done);

    const auto& refuser = st.outcomes["refuser@127.0.0.1"];
    CHECK(!refuser.ec);
    CHECK(refuser.messages == 4);
    CHECK(refuser.failed_messages == 1);
    CHECK(refuser.deleted == 4);
    REQUIRE(server.messages("refuser").size() == 1);
    CHECK(server.messages("refuser")[0] == mail[1]);  // the refused one stays

    const auto& kept = st.outcomes["keeper@127.0.0.1"];
    CHECK(kept.messages == 3);
    CHECK(kept.deleted == 0);
    CHECK(server.messages("keeper").size() == 5);
    CHECK(st.committed["keeper@127.0.0.1"].size() == 3);
    CHECK(st.committed["keeper@127.0.0.1"][5] == mail[4]);
}

TEST_CASE("DELE only after the last commit, all of them in one burst before QUIT") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    const auto mail = testing::generate_messages(spec(8, 3000, 21));
    std::size_t commits = 0;                                    // commits the handler has made
    std::vector<std::pair<std::string, std::size_t>> seen;      // command name, commits made by then
    testing::fault_plan watch;
    watch.rewrite = [&](std::string_view command, std::string&) {
        seen.emplace_back(std::string(command.substr(0, command.find(' '))), commits);
    };
    server.add_account("watched", "pw", mail, watch);
    REQUIRE(!server.start());
    // Message n is committed n x 3 ms after it arrives: a DELE sent as each
    // commit came would reach the server before the later commits.
    message_handler h;
    h.open = [](const account&, const message_info&) { return body_sink{}; };
    h.done = [&](const account&, const message_info& m, error_code ec,
                 asio::any_completion_handler<void(error_code)> committed) {
        auto t = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(3 * m.number));
        t->async_wait([&, t, ec, c = std::move(committed)](error_code) mutable {
            ++commits;
            std::move(c)(ec);
        });
    };
    store st;
    poller p(ioc.get_executor(), h, st.options());
    p.add(make_account(server, "watched", "pw"));
    bool done = false;
    p.async_run([&](error_code) { done = true; });
    run_until(ioc, done);
    const account_outcome& out = st.outcomes["watched@127.0.0.1"];
    CHECK(!out.ec);
    CHECK(out.messages == 8);
    CHECK(out.deleted == 8);
    CHECK(server.messages("watched").empty());
    std::size_t deles = 0;
    for (const auto& [name, commits_then] : seen) {
        if (name != "DELE") continue;
        ++deles;
        CHECK(commits_then == 8);
    }
    CHECK(deles == 8);
    REQUIRE(seen.size() >= 9);
    CHECK(seen.back().first == "QUIT");
    for (std::size_t i = seen.size() - 9; i + 1 < seen.size(); ++i) CHECK(seen[i].first == "DELE");
}

TEST_CASE("TLS: the poller's sessions resume the TLS session of the first login to a server") {
    for (const bool resume : {true, false}) {
        CAPTURE(resume);
        asio::io_context ioc;
        testing::server_options so;
        so.tls = testing::server_options::tls_mode::stls;
        testing::server server(ioc.get_executor(), so);
        for (int i = 0; i < 6; ++i)
            server.add_account("t" + std::to_string(i), "pw", testing::generate_messages(spec(2, 2000, 60 + i)));
        REQUIRE(!server.start());
        store st;
        poller_options o = st.options();
        o.max_sessions = 1;  // one after another: each login can find the one before
        if (!resume) o.tls_sessions = nullptr;
        poller p(ioc.get_executor(), st.handler(), o);
        const auto context = server.client_tls_context();
        for (int i = 0; i < 6; ++i) {
            account a = make_account(server, "t" + std::to_string(i), "pw");
            a.options.tls = tls_policy::required;
            a.options.allow_plaintext_auth = false;
            a.options.tls_context = context;
            p.add(std::move(a));
        }
        bool done = false;
        p.async_run([&](error_code) { done = true; });
        run_until(ioc, done);
        for (const auto& [id, out] : st.outcomes) CHECK_MESSAGE(!out.ec, id);
        CHECK(st.outcomes.size() == 6);
        CHECK(server.stats().tls_handshakes == 6);
        CHECK(server.stats().tls_resumed == (resume ? 5u : 0u));
    }
}

TEST_CASE("already_stored: deleted without being fetched, alongside the selected ones") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    const auto mail = testing::generate_messages(spec(6, 1500, 11));
    server.add_account("alice", "pw", mail);
    REQUIRE(!server.start());
    const auto uids = server.uids("alice");
    store st;
    poller p(ioc.get_executor(), st.handler(), st.options());
    account a = make_account(server, "alice", "pw");
    // Messages 2 and 5 were stored by an earlier run that never reached QUIT.
    const std::set<std::string> stored{uids[1], uids[4]};
    a.select = [&](const std::vector<message_info>& listing) {
        std::vector<std::uint64_t> out;
        for (const auto& m : listing)
            if (!stored.count(m.uid)) out.push_back(m.number);
        return out;
    };
    a.already_stored = [&](const std::vector<message_info>& listing) {
        std::vector<std::uint64_t> out;
        for (const auto& m : listing)
            if (stored.count(m.uid)) out.push_back(m.number);
        return out;
    };
    p.add(a);
    bool done = false;
    p.async_run([&](error_code) { done = true; });
    run_until(ioc, done);
    const auto& o = st.outcomes["alice@127.0.0.1"];
    CHECK(!o.ec);
    CHECK(o.messages == 4);
    CHECK(o.deleted == 6);
    CHECK(st.committed["alice@127.0.0.1"].size() == 4);
    CHECK(st.committed["alice@127.0.0.1"].count(2) == 0);
    CHECK(st.committed["alice@127.0.0.1"].count(5) == 0);
    CHECK(server.messages("alice").empty());
}

TEST_CASE("[LOGIN-DELAY] is retried after the delay CAPA advertised") {
    asio::io_context ioc;
    testing::server_options so;
    so.login_delay = 1;  // CAPA: LOGIN-DELAY 1
    testing::server server(ioc.get_executor(), so);
    testing::fault_plan early;
    early.refuse_logins = 1;
    early.refuse_code = "LOGIN-DELAY";
    server.add_account("eager", "pw", testing::generate_messages(spec(2, 1000, 3)), early);
    REQUIRE(!server.start());
    store st;
    poller p(ioc.get_executor(), st.handler(), st.options());
    p.add(make_account(server, "eager", "pw"));
    bool done = false;
    p.async_run([&](error_code) { done = true; });
    run_until(ioc, done);
    const auto& out = st.outcomes["eager@127.0.0.1"];
    CHECK(!out.ec);
    REQUIRE(out.retries.size() == 1);
    CHECK(out.retries[0].code.kind == response_code_kind::login_delay);
    CHECK(out.retries[0].delay >= std::chrono::seconds(1));  // the server's word, not the 20 ms backoff
}

TEST_CASE("service mode polls again until stopped; nothing is delivered twice") {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    const auto mail = testing::generate_messages(spec(3, 1500, 5));
    for (int i = 0; i < 3; ++i) server.add_account("s" + std::to_string(i), "pw", mail);
    REQUIRE(!server.start());
    store st;
    std::map<std::string, int> rounds;
    poller_options o = st.options();
    o.on_account_done = [&](const account_outcome& out) { ++rounds[out.account_id]; };
    std::vector<poll_event_kind> events;
    o.on_event = [&](const poll_event& e) { events.push_back(e.kind); };
    poller p(ioc.get_executor(), st.handler(), o);
    for (int i = 0; i < 3; ++i) p.add(make_account(server, "s" + std::to_string(i), "pw"));
    bool done = false;
    error_code result;
    p.async_serve(std::chrono::milliseconds(30), [&](error_code ec) {
        result = ec;
        done = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        ioc.run_one_for(std::chrono::milliseconds(10));
        bool enough = rounds.size() == 3;
        for (const auto& [id, n] : rounds) enough = enough && n >= 3;
        if (enough) break;
    }
    p.stop();
    run_until(ioc, done);
    CHECK(result == asio::error::operation_aborted);
    for (int i = 0; i < 3; ++i) {
        const std::string id = "s" + std::to_string(i) + "@127.0.0.1";
        CHECK(rounds[id] >= 3);
        CHECK(st.committed[id].size() == 3);  // the first round took them; later rounds found none
        CHECK(server.messages("s" + std::to_string(i)).empty());
    }
    CHECK(std::count(events.begin(), events.end(), poll_event_kind::message_committed) == 9);
    CHECK(std::count(events.begin(), events.end(), poll_event_kind::logged_in) >= 9);
}

TEST_CASE("an io_context run by two threads") {
    asio::io_context server_ioc;
    testing::server server(server_ioc.get_executor());
    for (int i = 0; i < 16; ++i)
        server.add_account("t" + std::to_string(i), "pw", testing::generate_messages(spec(5, 3000, i + 7)));
    REQUIRE(!server.start());
    auto server_guard = asio::make_work_guard(server_ioc);
    std::thread server_thread([&] { server_ioc.run(); });

    asio::io_context ioc;
    store st;
    std::promise<error_code> finished;
    // Two threads run the context: the poller gets a strand.
    poller p(asio::make_strand(ioc), st.handler(), st.options());
    for (int i = 0; i < 16; ++i) p.add(make_account(server, "t" + std::to_string(i), "pw"));
    p.async_run([&](error_code ec) { finished.set_value(ec); });
    std::thread second([&] { ioc.run(); });
    ioc.run();
    second.join();
    CHECK(!finished.get_future().get());
    asio::post(server_ioc, [&] {
        server.stop();
        server_guard.reset();
    });
    server_thread.join();
    CHECK(st.outcomes.size() == 16);
    for (const auto& [id, out] : st.outcomes) {
        CHECK_MESSAGE(!out.ec, id);
        CHECK(out.messages == 5);
    }
}
