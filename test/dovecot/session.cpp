// The session against a real Dovecot: every command, pipelining on and
// off, STLS and implicit TLS with verification, every SASL mechanism
// Dovecot offers and APOP, and Dovecot's response codes. Every message is
// compared byte for byte with the file Dovecot stores.

#include "instance.hpp"

#include "../support/relay.hpp"
#include "../support/run.hpp"

#include <pop3/session.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using asio::use_awaitable;
using pop3::test::the_dovecot;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

// A user with the interop corpus in its Maildir.
struct maildrop {
    std::string user;
    std::string password;
    std::vector<std::string> files;  // names, in delivery order
    std::map<std::string, std::string> wire_to_file;  // wire form -> file name
    // Wire form -> the size LIST gives: Dovecot counts a message without a
    // final newline without the CRLF that RETR adds to end it.
    std::map<std::string, std::uint64_t> listed_size;

    explicit maildrop(const std::string& stem, std::vector<std::string> messages = pop3::test::interop_corpus())
        : user(pop3::test::fresh_user(stem)), password("secret-" + user) {
        the_dovecot().add_user(user, password);
        files = the_dovecot().deliver(user, messages);
        for (std::size_t i = 0; i < messages.size(); ++i) {
            const std::string wire = pop3::testing::to_crlf(messages[i]);
            wire_to_file[wire] = files[i];
            const bool final_newline = !messages[i].empty() && messages[i].back() == '\n';
            listed_size[wire] = wire.size() - (final_newline ? 0 : 2);
        }
        REQUIRE(wire_to_file.size() == messages.size());  // the corpus has no two equal messages
    }

    // The file Dovecot stores under that name now, in wire form.
    std::string stored_wire(const std::string& file) const {
        const auto stored = the_dovecot().stored(user);
        const auto it = stored.find(file);
        REQUIRE_MESSAGE(it != stored.end(), "Dovecot no longer stores " << file);
        return pop3::testing::to_crlf(it->second);
    }

    credentials creds(auth_mechanism m = auth_mechanism::automatic) const {
        credentials c;
        c.user = user;
        c.password = password;
        c.mechanism = m;
        return c;
    }
};

// The header and the first `lines` lines of the body, as TOP returns them.
std::string expected_top(const std::string& wire, std::size_t lines) {
    std::size_t end = wire.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    end += 4;
    for (std::size_t i = 0; i < lines && end < wire.size(); ++i) {
        const std::size_t eol = wire.find("\r\n", end);
        end = eol == std::string::npos ? wire.size() : eol + 2;
    }
    return wire.substr(0, end);
}

// Everything a session learns of a maildrop, for comparing two runs.
struct transcript {
    stat_info stat;
    std::vector<message_info> infos;
    std::vector<std::string> bodies;
    std::vector<std::string> tops;
    bool operator==(const transcript& o) const {
        return stat.count == o.stat.count && stat.octets == o.stat.octets && bodies == o.bodies &&
               tops == o.tops && std::equal(infos.begin(), infos.end(), o.infos.begin(), o.infos.end(),
                                            [](const message_info& a, const message_info& b) {
                                                return a.number == b.number && a.octets == b.octets && a.uid == b.uid;
                                            });
    }
};

}  // namespace

TEST_CASE("CAPA as Dovecot advertises it, before and after STLS") {
    maildrop box("capa");
    asio::io_context ioc;
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session_options o = pop3::test::verified();
        o.tls = tls_policy::none;  // look at the plaintext CAPA first
        session s(ioc, o);
        co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
        CHECK(s.greeting().find("Dovecot") != std::string::npos);
        const capabilities before = co_await s.async_capa(use_awaitable);
        CHECK(before.stls);
        CHECK(before.user);
        CHECK(before.top);
        CHECK(before.uidl);
        CHECK(before.pipelining);
        CHECK(before.resp_codes);
        CHECK(before.auth_resp_code);
        for (const char* m : {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"})
            CHECK_MESSAGE(std::find(before.sasl.begin(), before.sasl.end(), m) != before.sasl.end(), m);
        CHECK(s.pipeline_depth() > 1);

        co_await s.async_starttls(use_awaitable);
        CHECK(s.is_encrypted());
        const capabilities after = co_await s.async_capa(use_awaitable);
        CHECK(!after.stls);  // RFC 2595: not offered again
        CHECK(after.pipelining);
        co_await s.async_login(box.user, box.password, use_awaitable);
        co_await s.async_quit(use_awaitable);
    });
}

TEST_CASE("every command over STLS, byte for byte with Dovecot's files") {
    maildrop box("every");
    asio::io_context ioc;
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session s(ioc, pop3::test::verified());
        co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
        CHECK(s.is_encrypted());
        co_await s.async_capa(use_awaitable);
        co_await s.async_login(box.user, box.password, use_awaitable);
        CHECK(s.state() == session_state::transaction);

        const std::size_t n = box.files.size();
        std::uint64_t total = 0;
        for (const auto& [wire, octets] : box.listed_size) total += octets;
        const stat_info st = co_await s.async_stat(use_awaitable);
        CHECK(st.count == n);
        CHECK(st.octets == total);

        const auto list = co_await s.async_list(use_awaitable);
        REQUIRE(list.size() == n);
        const auto uidl = co_await s.async_uidl(use_awaitable);
        REQUIRE(uidl.size() == n);
        std::set<std::string> distinct;
        for (const auto& u : uidl) distinct.insert(u.uid);
        CHECK(distinct.size() == n);

        std::set<std::string> seen_files;
        for (std::uint64_t i = 1; i <= n; ++i) {
            CAPTURE(i);
            const std::string body = co_await s.async_retr(i, use_awaitable);
            const auto it = box.wire_to_file.find(body);
            REQUIRE_MESSAGE(it != box.wire_to_file.end(), "RETR " << i << " is none of the messages delivered");
            CHECK(body == box.stored_wire(it->second));  // the file as Dovecot stores it now
            seen_files.insert(it->second);
            CHECK(list[i - 1].number == i);
            CHECK(list[i - 1].octets == box.listed_size.at(body));

            const list_entry one = co_await s.async_list(i, use_awaitable);
            CHECK(one.octets == list[i - 1].octets);
            const uidl_entry u = co_await s.async_uidl(i, use_awaitable);
            CHECK(u.uid == uidl[i - 1].uid);

            CHECK(co_await s.async_top(i, 0, use_awaitable) == expected_top(body, 0));
            CHECK(co_await s.async_top(i, 3, use_awaitable) == expected_top(body, 3));
        }
        CHECK(seen_files.size() == n);

        const auto infos = co_await s.async_list_uidl(use_awaitable);
        REQUIRE(infos.size() == n);
        CHECK(infos[4].uid == uidl[4].uid);
        CHECK(infos[4].octets == list[4].octets);

        // Streamed to a sink: the same bytes as into a string.
        std::string streamed;
        body_sink sink;
        sink.write = [&](std::string_view chunk) {
            streamed.append(chunk);
            return error_code{};
        };
        const std::uint64_t octets = co_await s.async_retr(1, sink, use_awaitable);
        CHECK(streamed == co_await s.async_retr(1, use_awaitable));
        CHECK(octets == streamed.size());

        // What Dovecot refuses, the session survives.
        diagnostics diag;
        auto [ec_last, last] = co_await s.async_last(asio::as_tuple(use_awaitable), &diag);
        CHECK(ec_last == error::server_refused);  // LAST is gone since RFC 1939
        CHECK(!diag.server_message().empty());
        auto [ec_none, none] = co_await s.async_retr(n + 1, asio::as_tuple(use_awaitable), &diag);
        CHECK(ec_none == error::server_refused);
        co_await s.async_noop(use_awaitable);

        // DELE, then RSET undoes it; DELE again and QUIT commits it.
        co_await s.async_dele(2, use_awaitable);
        auto [ec_gone, gone] = co_await s.async_retr(2, asio::as_tuple(use_awaitable), &diag);
        CHECK(ec_gone == error::server_refused);
        CHECK((co_await s.async_stat(use_awaitable)).count == n - 1);
        co_await s.async_rset(use_awaitable);
        CHECK((co_await s.async_stat(use_awaitable)).count == n);

        const std::string second_file = box.wire_to_file.at(co_await s.async_retr(2, use_awaitable));
        const std::string third_file = box.wire_to_file.at(co_await s.async_retr(3, use_awaitable));
        std::vector<std::uint64_t> doomed{2, 3};
        const auto results = co_await s.async_delete(doomed, use_awaitable);
        REQUIRE(results.size() == 2);
        CHECK(!results[0]);
        CHECK(!results[1]);
        co_await s.async_quit(use_awaitable);
        CHECK(s.state() == session_state::update);

        const auto stored = the_dovecot().stored(box.user);
        CHECK(stored.size() == n - 2);
        CHECK(stored.count(second_file) == 0);
        CHECK(stored.count(third_file) == 0);
    });
}

TEST_CASE("pipelining on and off: the same answers, and the commands really went out together") {
    maildrop box("pipe");
    asio::io_context ioc;
    // Between client and Dovecot, a relay counts the client's writes.
    pop3::test::relay wire(the_dovecot().plain_port());
    const std::string port = std::to_string(wire.port());
    std::size_t fetch_writes = 0;
    auto run_once = [&](std::size_t depth) {
        transcript t;
        pop3::test::run(ioc, [&]() -> awaitable<void> {
            session_options o = pop3::test::verified();
            o.pipeline.depth = depth;
            session s(ioc, o);
            co_await s.async_connect("127.0.0.1", port, use_awaitable);
            co_await s.async_capa(use_awaitable);
            CHECK(s.pipeline_depth() == (depth == 0 ? default_pipeline_depth : depth));
            co_await s.async_login(box.user, box.password, use_awaitable);
            t.stat = co_await s.async_stat(use_awaitable);
            t.infos = co_await s.async_list_uidl(use_awaitable);

            std::vector<std::uint64_t> numbers;
            for (const auto& m : t.infos) numbers.push_back(m.number);
            t.bodies.resize(numbers.size());
            fetch_callbacks cb;
            cb.open = [&](const message_info& m) {
                body_sink sink;
                sink.write = [&t, i = m.number - 1](std::string_view chunk) {
                    t.bodies[i].append(chunk);
                    return error_code{};
                };
                return sink;
            };
            std::size_t ok = 0;
            cb.done = [&](const message_info&, error_code ec, const diagnostics&) { ok += !ec; };
            wire.reset_counts();
            co_await s.async_fetch(numbers, cb, use_awaitable);
            fetch_writes = wire.client_reads();
            CHECK(ok == numbers.size());

            // TOPs started together, completing in order.
            std::vector<std::string> tops(numbers.size());
            std::size_t finished = 0;
            for (std::uint64_t n : numbers)
                s.async_top(n, 2, [&, n](error_code ec, std::string text) {
                    CHECK(!ec);
                    tops[n - 1] = std::move(text);
                    ++finished;
                });
            co_await s.async_noop(use_awaitable);  // queued behind them all
            CHECK(finished == numbers.size());
            t.tops = std::move(tops);
            co_await s.async_quit(use_awaitable);
        });
        return t;
    };
    const transcript pipelined = run_once(0);
    const std::size_t pipelined_writes = fetch_writes;
    const transcript lockstep = run_once(1);
    const std::size_t lockstep_writes = fetch_writes;
    const std::size_t n = box.files.size();
    CHECK(lockstep_writes >= n);  // one RETR per write, each after the last reply
    CHECK_MESSAGE(pipelined_writes <= n / 3, pipelined_writes << " writes for " << n << " RETRs");
    CHECK(wire.connections() == 2);
    CHECK(pipelined.bodies.size() == box.files.size());
    CHECK(pipelined == lockstep);
    for (const auto& b : pipelined.bodies) CHECK(box.wire_to_file.count(b) == 1);
    CHECK(the_dovecot().stored(box.user).size() == box.files.size());  // nothing deleted
}

TEST_CASE("implicit TLS and STLS verify Dovecot's certificate; without the CA, no connection") {
    maildrop box("tls");
    asio::io_context ioc;
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        {
            session s(ioc, pop3::test::verified(transport::implicit_tls));
            co_await s.async_connect("127.0.0.1", pop3::test::tls_port(), use_awaitable);
            CHECK(s.is_encrypted());
            co_await s.async_capa(use_awaitable);
            co_await s.async_login(box.user, box.password, use_awaitable);
            CHECK((co_await s.async_stat(use_awaitable)).count == box.files.size());
            co_await s.async_quit(use_awaitable);
        }
        {
            // By name: the certificate is for "localhost" too.
            session s(ioc, pop3::test::verified(transport::implicit_tls));
            co_await s.async_connect("localhost", pop3::test::tls_port(), use_awaitable);
            CHECK(s.is_encrypted());
        }
        // The system's trust store does not know the test CA.
        // (Named variables, not temporaries in the co_await expression:
        // GCC 12 mishandles those.)
        const std::vector<transport> modes{transport::implicit_tls, transport::plain};
        for (const transport mode : modes) {
            session_options o = pop3::test::verified(mode);
            o.tls_context = make_tls_context({});
            session s(ioc, o);
            const std::string port = mode == transport::plain ? pop3::test::plain_port() : pop3::test::tls_port();
            auto [ec] = co_await s.async_connect("127.0.0.1", port, tuple_awaitable);
            CHECK_MESSAGE(ec, "an untrusted certificate was accepted");
            CHECK(is_fatal(ec));
            CHECK(s.state() == session_state::failed);
            auto [ec_login] = co_await s.async_login(box.user, box.password, tuple_awaitable);
            CHECK(ec_login);
        }
        // Trusted CA, but another host's name.
        {
            session_options o = pop3::test::verified(transport::implicit_tls);
            o.tls_server_name = "mail.example.test";
            session s(ioc, o);
            auto [ec] = co_await s.async_connect("127.0.0.1", pop3::test::tls_port(), tuple_awaitable);
            CHECK_MESSAGE(ec, "a certificate for another host was accepted");
        }
        // Plain TCP without STLS: the password stays home.
        {
            session_options o = pop3::test::verified();
            o.tls = tls_policy::none;
            session s(ioc, o);
            co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
            co_await s.async_capa(use_awaitable);
            auto [ec] = co_await s.async_login(box.user, box.password, tuple_awaitable);
            CHECK(ec == error::plaintext_auth_refused);
        }
    });
    // Dovecot saw no login attempt from the refused sessions.
    const std::string log = the_dovecot().log();
    std::size_t logins = 0;
    for (std::size_t at = 0; (at = log.find("user=<" + box.user + ">", at)) != std::string::npos; ++at) ++logins;
    CHECK(logins == 1);
}

TEST_CASE("every SASL mechanism Dovecot offers, and APOP, with [AUTH] for a wrong password") {
    maildrop box("sasl", {"Subject: one\n\nbody\n"});
    struct row {
        auth_mechanism mechanism;
        const char* logged;  // Dovecot's log names the method it accepted
    };
    const row rows[] = {
        {auth_mechanism::user_pass, "method=PLAIN"},  // USER/PASS goes through Dovecot's PLAIN
        {auth_mechanism::plain, "method=PLAIN"},
        {auth_mechanism::login, "method=LOGIN"},
        {auth_mechanism::cram_md5, "method=CRAM-MD5"},
        {auth_mechanism::scram_sha_1, "method=SCRAM-SHA-1"},
        {auth_mechanism::scram_sha_256, "method=SCRAM-SHA-256"},
        {auth_mechanism::apop, "method=APOP"},
        {auth_mechanism::automatic, "method=SCRAM-SHA-256"},  // the strongest both have
    };
    asio::io_context ioc;
    for (const row& r : rows) {
        const std::string name(mechanism_name(r.mechanism));
        CAPTURE(name);
        const std::size_t log_before = the_dovecot().log().size();
        pop3::test::run(ioc, [&]() -> awaitable<void> {
            {
                session s(ioc, pop3::test::verified());
                co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
                co_await s.async_capa(use_awaitable);
                co_await s.async_authenticate(box.creds(r.mechanism), use_awaitable);
                CHECK(s.state() == session_state::transaction);
                CHECK((co_await s.async_retr(1, use_awaitable)) == "Subject: one\r\n\r\nbody\r\n");
                co_await s.async_quit(use_awaitable);
            }
            {
                session s(ioc, pop3::test::verified());
                co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
                co_await s.async_capa(use_awaitable);
                credentials wrong = box.creds(r.mechanism);
                wrong.password = "not-the-password";
                diagnostics diag;
                auto [ec] = co_await s.async_authenticate(wrong, tuple_awaitable, &diag);
                CHECK(ec == error::server_refused);
                CHECK(diag.code().kind == response_code_kind::auth);
                CHECK(!diag.code().is_transient());
                CHECK(s.state() == session_state::authorization);
                // (Dovecot holds a connection's next command for seconds
                // after a failed login: the retry on the same connection is
                // tested once, below.)
            }
        });
        // Poll briefly: the login line may reach the log a moment after
        // the client already has its answer.
        std::string added;
        for (int i = 0; i < 100; ++i) {
            added = the_dovecot().log().substr(log_before);
            if (added.find(r.logged) != std::string::npos) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        CHECK_MESSAGE(added.find(r.logged) != std::string::npos, "Dovecot's log does not say " << r.logged);
    }
}

TEST_CASE("after [AUTH], the same connection logs in with the right password") {
    maildrop box("retry", {"Subject: one\n\nbody\n"});
    asio::io_context ioc;
    pop3::test::run(
        ioc,
        [&]() -> awaitable<void> {
            session s(ioc, pop3::test::verified());
            co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
            co_await s.async_capa(use_awaitable);
            diagnostics diag;
            auto [ec] = co_await s.async_login(box.user, "wrong", tuple_awaitable, &diag);
            CHECK(ec == error::server_refused);
            CHECK(diag.code().kind == response_code_kind::auth);
            // Dovecot answers this only after its failure delay (~5 s).
            co_await s.async_authenticate(box.creds(auth_mechanism::scram_sha_256), use_awaitable);
            CHECK((co_await s.async_stat(use_awaitable)).count == 1);
            co_await s.async_quit(use_awaitable);
        },
        std::chrono::seconds(60));
}

TEST_CASE("[IN-USE] while another session holds the maildrop, then a login once it is gone") {
    maildrop box("inuse", {"Subject: locked\n\nbody\n"});
    asio::io_context ioc;
    pop3::test::run(
        ioc,
        [&]() -> awaitable<void> {
            session first(ioc, pop3::test::verified());
            co_await first.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
            co_await first.async_capa(use_awaitable);
            co_await first.async_login(box.user, box.password, use_awaitable);

            session second(ioc, pop3::test::verified());
            co_await second.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
            co_await second.async_capa(use_awaitable);
            diagnostics diag;
            // Dovecot waits for its session lock before it answers.
            auto [ec] = co_await second.async_login(box.user, box.password, tuple_awaitable, &diag);
            CHECK(ec == error::server_refused);
            CHECK(diag.code().kind == response_code_kind::in_use);
            CHECK(diag.code().is_transient());
            CHECK(diag.server_message().find("locked") != std::string::npos);

            // The first session is undisturbed; once it quits, a new one logs in.
            CHECK((co_await first.async_stat(use_awaitable)).count == 1);
            co_await first.async_quit(use_awaitable);
            session third(ioc, pop3::test::verified());
            co_await third.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
            co_await third.async_capa(use_awaitable);
            co_await third.async_login(box.user, box.password, use_awaitable);
            CHECK((co_await third.async_stat(use_awaitable)).count == 1);
            co_await third.async_quit(use_awaitable);
        },
        std::chrono::seconds(90));
}

TEST_CASE("many sessions at once on one io_context") {
    constexpr std::size_t users = 24;
    std::vector<std::unique_ptr<maildrop>> boxes;
    for (std::size_t i = 0; i < users; ++i) {
        boxes.push_back(std::make_unique<maildrop>(
            "many", pop3::test::interop_corpus(100 + i, 6)));
    }
    asio::io_context ioc;
    std::size_t fetched = 0, matched = 0, finished = 0;
    for (auto& b : boxes) {
        asio::co_spawn(
            ioc,
            [&, box = b.get()]() -> awaitable<void> {
                session s(ioc, pop3::test::verified());
                co_await s.async_connect("127.0.0.1", pop3::test::plain_port(), use_awaitable);
                co_await s.async_capa(use_awaitable);
                co_await s.async_login(box->user, box->password, use_awaitable);
                const auto infos = co_await s.async_list_uidl(use_awaitable);
                for (const auto& m : infos) {
                    const std::string body = co_await s.async_retr(m.number, use_awaitable);
                    ++fetched;
                    matched += box->wire_to_file.count(body);
                }
                co_await s.async_quit(use_awaitable);
                ++finished;
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
    }
    ioc.run_for(std::chrono::seconds(120));
    CHECK(finished == users);
    std::size_t expected = 0;
    for (auto& b : boxes) expected += b->files.size();
    CHECK(fetched == expected);
    CHECK(matched == expected);
}
