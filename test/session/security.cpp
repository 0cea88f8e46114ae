// STLS, TLS verification, pinning, SASL and the authentication policy,
// end to end against the test server.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include "../../lib/testing/certificate.hpp"
#include "../support/fetch_all.hpp"
#include "../support/relay.hpp"
#include "../support/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <doctest/doctest.h>

#include <openssl/ssl.h>

namespace asio = boost::asio;
using namespace pop3;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
namespace certs = pop3::testing::detail;

namespace {

struct tls_fixture {
    asio::io_context ioc;
    testing::server server;
    std::vector<std::string> mail = testing::generate_messages({});

    explicit tls_fixture(testing::server_options o, std::optional<testing::fault_plan> faults = {})
        : server(ioc.get_executor(), std::move(o)) {
        server.add_account("alice", "wonderland", mail, faults);
        REQUIRE(!server.start());
    }
    std::string port() const { return std::to_string(server.port()); }

    // A client for the server's own certificate, by STLS or implicit TLS.
    session_options client(transport mode = transport::plain) const {
        session_options o;
        o.mode = mode;
        o.tls_context = server.client_tls_context();
        o.reply_timeout = std::chrono::seconds(5);
        return o;
    }
};

testing::server_options stls_server() {
    testing::server_options o;
    o.tls = testing::server_options::tls_mode::stls;
    return o;
}
testing::server_options implicit_server() {
    testing::server_options o;
    o.tls = testing::server_options::tls_mode::implicit;
    return o;
}

credentials password(auth_mechanism m, std::string pw = "wonderland") {
    credentials c;
    c.user = "alice";
    c.password = std::move(pw);
    c.mechanism = m;
    return c;
}

}  // namespace

TEST_CASE("STLS by default: the password crosses only TLS") {
    tls_fixture f(stls_server());
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.client());
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        CHECK(s.is_encrypted());
        REQUIRE(s.server_capabilities() != nullptr);
        CHECK(!s.server_capabilities()->stls);  // asked again over TLS
        co_await s.async_login("alice", "wonderland", use_awaitable);  // no plaintext opt-in needed
        CHECK(co_await s.async_retr(1, use_awaitable) == f.mail[0]);
    });
}

TEST_CASE("TLS required but no STLS: an error before any credential") {
    tls_fixture f({});  // a plain server without STLS
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.client());
        auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec == error::tls_required);
        CHECK(s.state() == session_state::failed);
        auto [ec2] = co_await s.async_login("alice", "wonderland", tuple_awaitable);
        CHECK(ec2 == error::session_failed);
    });
    CHECK(f.server.stats().commands == 1);  // CAPA, nothing else
}

TEST_CASE("opportunistic TLS without STLS carries on, but keeps the password back") {
    tls_fixture f({});
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.client();
        o.tls = tls_policy::opportunistic;
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        CHECK(!s.is_encrypted());
        auto [ec] = co_await s.async_login("alice", "wonderland", tuple_awaitable);
        CHECK(ec == error::plaintext_auth_refused);
        auto [ec2] = co_await s.async_authenticate(password(auth_mechanism::automatic), tuple_awaitable);
        CHECK(!ec2);  // SCRAM-SHA-256: no cleartext secret
        CHECK(s.state() == session_state::transaction);
    });
}

TEST_CASE("STLS injection: bytes after +OK in the same write end the session") {
    for (std::string injected : {std::string("+OK fake\r\n"), std::string("+OK fa")}) {
        CAPTURE(injected);
        testing::fault_plan faults;
        faults.stls_inject = injected;
        testing::server_options so = stls_server();
        so.faults = faults;
        tls_fixture f(so);
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session s(f.ioc, f.client());
            auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
            CHECK(ec == error::stls_injection);
            CHECK(s.state() == session_state::failed);
        });
    }
}

TEST_CASE("silence after the STLS +OK hits the handshake deadline") {
    testing::server_options so = stls_server();
    so.faults.stls_silent = true;
    tls_fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.client();
        o.handshake_timeout = std::chrono::milliseconds(300);
        session s(f.ioc, o);
        auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec == error::timeout);
    });
}

TEST_CASE("every SASL mechanism, end to end over TLS") {
    tls_fixture f(implicit_server());
    for (auto m : {auth_mechanism::plain, auth_mechanism::login, auth_mechanism::cram_md5, auth_mechanism::scram_sha_1,
                   auth_mechanism::scram_sha_256, auth_mechanism::user_pass, auth_mechanism::apop}) {
        CAPTURE(mechanism_name(m));
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session s(f.ioc, f.client(transport::implicit_tls));
            co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
            co_await s.async_capa(use_awaitable);
            diagnostics d;
            auto [bad] = co_await s.async_authenticate(password(m, "wrong"), tuple_awaitable, &d);
            CHECK(bad == error::server_refused);
            CHECK(d.code().kind == response_code_kind::auth);
            CHECK(s.state() == session_state::authorization);
            auto [ec] = co_await s.async_authenticate(password(m), tuple_awaitable, &d);
            CHECK_MESSAGE(!ec, std::string(ec.message() + " / " + d.server_message()));
            CHECK(s.state() == session_state::transaction);
            CHECK(co_await s.async_retr(2, use_awaitable) == f.mail[1]);
            co_await s.async_quit(use_awaitable);
        });
    }
}

TEST_CASE("OAuth: XOAUTH2 and OAUTHBEARER, with the token from a provider, one and two steps") {
    tls_fixture f(implicit_server());
    for (auto m : {auth_mechanism::xoauth2, auth_mechanism::oauthbearer}) {
        for (std::size_t extra : {std::size_t(0), std::size_t(400)}) {  // 400: over 255 octets, two steps
            CAPTURE(mechanism_name(m));
            CAPTURE(extra);
            const std::string good = "wonderland";
            f.server.add_account("tok" + std::to_string(extra), good + std::string(extra, 'x'), f.mail);
            pop3::test::run(f.ioc, [&]() -> awaitable<void> {
                int calls = 0;
                credentials c;
                c.user = "tok" + std::to_string(extra);
                c.mechanism = m;
                std::string token = "expired";
                c.oauth_token = [&](std::string& t) {
                    ++calls;
                    t = token;
                    return error_code{};
                };
                session_options o = f.client(transport::implicit_tls);
                o.sasl_initial_response = extra == 0;  // the long token goes two-step anyway
                session s(f.ioc, o);
                co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
                co_await s.async_capa(use_awaitable);
                auto [bad] = co_await s.async_authenticate(c, tuple_awaitable);
                CHECK(bad == error::server_refused);  // the server's JSON, answered, then -ERR
                token = good + std::string(extra, 'x');  // refreshed
                auto [ec] = co_await s.async_authenticate(c, tuple_awaitable);
                CHECK_MESSAGE(!ec, ec.message());
                CHECK(calls == 2);
                CHECK(s.state() == session_state::transaction);
            });
        }
    }
}

TEST_CASE("SCRAM: a server that cannot prove the password is not used") {
    testing::server_options so = implicit_server();
    so.faults.bad_scram_signature = true;
    tls_fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.client(transport::implicit_tls));
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_capa(use_awaitable);
        auto [ec] = co_await s.async_authenticate(password(auth_mechanism::scram_sha_256), tuple_awaitable);
        CHECK(ec == error::server_signature_mismatch);
        CHECK(s.state() != session_state::transaction);
    });
}

TEST_CASE("a mechanism asked for that the server does not offer is an error, not a fallback") {
    testing::server_options so = implicit_server();
    so.sasl = {"PLAIN"};
    tls_fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.client(transport::implicit_tls));
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_capa(use_awaitable);
        const auto before = f.server.stats().commands;
        auto [ec] = co_await s.async_authenticate(password(auth_mechanism::cram_md5), tuple_awaitable);
        CHECK(ec == error::mechanism_not_offered);
        CHECK(f.server.stats().commands == before);
        auto [ec2] = co_await s.async_authenticate(password(auth_mechanism::automatic), tuple_awaitable);
        CHECK(!ec2);  // PLAIN, over TLS
    });
}

TEST_CASE("credentials with CR, LF or NUL never reach the server") {
    tls_fixture f(implicit_server());
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.client(transport::implicit_tls));
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_capa(use_awaitable);
        const auto before = f.server.stats().commands;
        for (auto m : {auth_mechanism::plain, auth_mechanism::user_pass, auth_mechanism::scram_sha_256}) {
            auto [ec] = co_await s.async_authenticate(password(m, "pw\r\nDELE 1"), tuple_awaitable);
            CHECK(ec == error::argument_has_forbidden_char);
        }
        auto [ec] = co_await s.async_login("alice\nDELE 1", "x", tuple_awaitable);
        CHECK(ec == error::argument_has_forbidden_char);
        CHECK(f.server.stats().commands == before);
    });
}

TEST_CASE("public key pinning") {
    tls_fixture f(implicit_server());
    const std::string pin = public_key_pin(f.server.certificate_pem());
    REQUIRE(!pin.empty());
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options good = f.client(transport::implicit_tls);
        good.tls_pins = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", pin};
        session s(f.ioc, good);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);

        session_options bad = f.client(transport::implicit_tls);
        bad.tls_pins = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
        session s2(f.ioc, bad);
        auto [ec] = co_await s2.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(ec == error::certificate_pin_mismatch);
    });
}

TEST_CASE("certificates: expired, not yet valid, unknown CA, self-signed, another host, wildcards") {
    const auto ca = certs::make_ca("pop3 test CA");
    const auto other_ca = certs::make_ca("another CA");
    struct row {
        const char* what;
        certs::key_and_certificate cert;
        std::string server_name;
        bool trusted_ca_is_ours;
        bool should_connect;
    };
    const row table[] = {
        {"valid, by IP", certs::make_leaf(ca, {"mail.example.test"}, {"127.0.0.1"}), "", true, true},
        {"valid, by name", certs::make_leaf(ca, {"mail.example.test"}, {}), "mail.example.test", true, true},
        {"expired", certs::make_leaf(ca, {"mail.example.test"}, {}, -7200, -3600), "mail.example.test", true, false},
        {"not yet valid", certs::make_leaf(ca, {"mail.example.test"}, {}, 3600, 7200), "mail.example.test", true, false},
        {"unknown CA", certs::make_leaf(other_ca, {"mail.example.test"}, {}), "mail.example.test", true, false},
        {"self-signed", certs::make_self_signed({"mail.example.test"}, {}), "mail.example.test", true, false},
        {"another host", certs::make_leaf(ca, {"other.example.test"}, {}), "mail.example.test", true, false},
        {"wildcard matches one label", certs::make_leaf(ca, {"*.example.test"}, {}), "mail.example.test", true, true},
        {"wildcard does not match two labels", certs::make_leaf(ca, {"*.example.test"}, {}), "a.b.example.test", true, false},
        {"wildcard does not match the bare domain", certs::make_leaf(ca, {"*.example.test"}, {}), "example.test", true, false},
        {"partial wildcard refused", certs::make_leaf(ca, {"m*.example.test"}, {}), "mail.example.test", true, false},
        {"trusting another CA", certs::make_leaf(ca, {"mail.example.test"}, {}), "mail.example.test", false, false},
    };
    for (const row& r : table) {
        INFO(std::string(r.what));
        testing::server_options so = implicit_server();
        so.tls_key_pem = r.cert.key_pem;
        so.tls_certificate_pem = r.cert.certificate_pem;
        tls_fixture f(so);
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session_options o;
            o.mode = transport::implicit_tls;
            o.tls_server_name = r.server_name;
            auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
            ctx->set_verify_mode(asio::ssl::verify_peer);
            ctx->add_certificate_authority(asio::buffer(r.trusted_ca_is_ours ? ca.certificate_pem : other_ca.certificate_pem));
            o.tls_context = ctx;
            session s(f.ioc, o);
            auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
            CHECK_MESSAGE(!ec == r.should_connect, ec.message());
        });
    }
}

TEST_CASE("servers offering only TLS 1.0 or 1.1 are refused") {
    for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
        CAPTURE(version);
        testing::server_options so = implicit_server();
        so.tls_max_version = version;
        tls_fixture f(so);
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session_options o = f.client(transport::implicit_tls);
            o.tls_context = make_tls_context({});
            o.tls_context->add_certificate_authority(asio::buffer(f.server.certificate_pem()));
            session s(f.ioc, o);
            auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
            CHECK(ec);
        });
    }
    // The same server at TLS 1.2 is accepted: the refusal is the version's.
    testing::server_options so = implicit_server();
    so.tls_max_version = TLS1_2_VERSION;
    tls_fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.client(transport::implicit_tls);
        o.tls_context = make_tls_context({});
        o.tls_context->add_certificate_authority(asio::buffer(f.server.certificate_pem()));
        session s(f.ioc, o);
        auto [ec] = co_await s.async_connect("127.0.0.1", f.port(), tuple_awaitable);
        CHECK(!ec);
    });
}

TEST_CASE("UTF8 and LANG") {
    tls_fixture f(implicit_server());
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session s(f.ioc, f.client(transport::implicit_tls));
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        // The test server does not implement RFC 6856: it must say -ERR, and
        // the session go on.
        auto [ec] = co_await s.async_utf8(tuple_awaitable);
        CHECK(ec == error::server_refused);
        auto [ec2] = co_await s.async_lang("fr", tuple_awaitable);
        CHECK(ec2 == error::server_refused);
        co_await s.async_login("alice", "wonderland", use_awaitable);
    });
}

TEST_CASE("EXTERNAL: the TLS client certificate is the credential") {
    const auto ca = certs::make_ca("client CA");
    const auto client_cert = certs::make_leaf(ca, {"alice"}, {});  // common name "alice"
    testing::server_options so = implicit_server();
    so.sasl = {"EXTERNAL", "PLAIN"};
    so.client_ca_pem = ca.certificate_pem;
    tls_fixture f(so);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        session_options o = f.client(transport::implicit_tls);
        o.tls_context->use_certificate(asio::buffer(client_cert.certificate_pem), asio::ssl::context::pem);
        o.tls_context->use_private_key(asio::buffer(client_cert.key_pem), asio::ssl::context::pem);
        session s(f.ioc, o);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await s.async_capa(use_awaitable);
        credentials c;
        c.user = "alice";
        c.client_certificate = true;
        co_await s.async_authenticate(c, use_awaitable);  // automatic: EXTERNAL first
        CHECK(s.state() == session_state::transaction);

        // Without a certificate the server refuses EXTERNAL.
        session plain_client(f.ioc, f.client(transport::implicit_tls));
        co_await plain_client.async_connect("127.0.0.1", f.port(), use_awaitable);
        co_await plain_client.async_capa(use_awaitable);
        c.mechanism = auth_mechanism::external;
        auto [ec] = co_await plain_client.async_authenticate(c, tuple_awaitable);
        CHECK(ec == error::server_refused);
    });
}

TEST_CASE("TLS session resumption: the same server resumes; another context, name or pin does not") {
    for (auto kind : {testing::server_options::tls_mode::implicit, testing::server_options::tls_mode::stls}) {
        testing::server_options so;
        so.tls = kind;
        tls_fixture f(so);
        const transport mode =
            kind == testing::server_options::tls_mode::implicit ? transport::implicit_tls : transport::plain;
        CAPTURE(static_cast<int>(mode));
        auto cache = std::make_shared<tls_session_cache>();
        const auto context = f.server.client_tls_context();
        // One connection: connect, log in, fetch a message, quit. Returns
        // whether its handshake resumed a session.
        auto once = [&](session_options o, std::string host) -> awaitable<bool> {
            session s(f.ioc, std::move(o));
            co_await s.async_connect(host, f.port(), use_awaitable);
            co_await s.async_authenticate(password(auth_mechanism::user_pass), use_awaitable);
            auto body = co_await s.async_retr(1, use_awaitable);
            CHECK(body == f.mail[0]);
            const bool resumed = s.tls_resumed();
            co_await s.async_quit(use_awaitable);
            co_return resumed;
        };
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session_options o = f.client(mode);
            o.tls_context = context;
            o.tls_session_cache = cache;
            CHECK(!co_await once(o, "127.0.0.1"));  // nothing to resume yet
            CHECK(cache->size() == 1);
            CHECK(co_await once(o, "127.0.0.1"));
            CHECK(co_await once(o, "127.0.0.1"));  // and again: a ticket is not used up

            session_options other_context = o;
            other_context.tls_context = f.server.client_tls_context();  // the same trust, another context
            CHECK(!co_await once(other_context, "127.0.0.1"));

            session_options other_name = o;
            other_name.tls_server_name = "localhost";  // the certificate names it too
            CHECK(!co_await once(other_name, "127.0.0.1"));

            session_options pinned = o;
            pinned.tls_pins = {public_key_pin(f.server.certificate_pem())};
            CHECK(!co_await once(pinned, "127.0.0.1"));
            CHECK(co_await once(pinned, "127.0.0.1"));

            session_options no_cache = o;
            no_cache.tls_session_cache = nullptr;
            CHECK(!co_await once(no_cache, "127.0.0.1"));
            CHECK(cache->size() == 4);  // one per name, context and pins
        });
    }
}

TEST_CASE("TLS session cache: bounded, the oldest first out") {
    testing::server_options so;
    so.tls = testing::server_options::tls_mode::implicit;
    tls_fixture f(so);
    auto cache = std::make_shared<tls_session_cache>(2);
    pop3::test::run(f.ioc, [&]() -> awaitable<void> {
        std::vector<std::shared_ptr<asio::ssl::context>> contexts;
        for (int i = 0; i < 3; ++i) {
            contexts.push_back(f.server.client_tls_context());
            session_options o = f.client(transport::implicit_tls);
            o.tls_context = contexts.back();
            o.tls_session_cache = cache;
            session s(f.ioc, o);
            co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
            co_await s.async_quit(use_awaitable);
            CHECK(cache->size() == std::min(i + 1, 2));
        }
        // The first context's session went out when the third came in.
        session_options first = f.client(transport::implicit_tls);
        first.tls_context = contexts[0];
        first.tls_session_cache = cache;
        session s(f.ioc, first);
        co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
        CHECK(!s.tls_resumed());
        co_await s.async_quit(use_awaitable);
        session_options third = first;
        third.tls_context = contexts[2];
        session s3(f.ioc, third);
        co_await s3.async_connect("127.0.0.1", f.port(), use_awaitable);
        CHECK(s3.tls_resumed());
        co_await s3.async_quit(use_awaitable);
    });
}

TEST_CASE("TLS session cache: a failed verification forgets the server's session") {
    asio::io_context ioc;
    testing::server_options so;
    so.tls = testing::server_options::tls_mode::implicit;
    auto first = std::make_unique<testing::server>(ioc.get_executor(), so);
    first->add_account("alice", "wonderland", testing::generate_messages({}));
    REQUIRE(!first->start());
    const auto port = first->port();
    auto cache = std::make_shared<tls_session_cache>();
    session_options o;
    o.mode = transport::implicit_tls;
    o.tls_context = first->client_tls_context();  // trusts the first server's certificate only
    o.tls_session_cache = cache;
    o.reply_timeout = std::chrono::seconds(5);
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session s(ioc, o);
        co_await s.async_connect("127.0.0.1", std::to_string(port), use_awaitable);
        co_await s.async_quit(use_awaitable);
    });
    REQUIRE(cache->size() == 1);
    first->stop();
    first.reset();
    // Another server on the same port, with a certificate of its own that
    // the context does not trust: the handshake fails, and the session kept
    // for this name and port goes.
    so.port = port;
    testing::server second(ioc.get_executor(), so);
    second.add_account("alice", "wonderland", testing::generate_messages({}));
    REQUIRE(!second.start());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session s(ioc, o);
        auto [ec] = co_await s.async_connect("127.0.0.1", std::to_string(port), tuple_awaitable);
        CHECK(ec);
        CHECK(!s.tls_resumed());
    });
    CHECK(cache->size() == 0);
}

TEST_CASE("TLS 1.3 and 1.2: a pipelined fetch arrives whole, records read several at a time or one by one") {
    for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
        CAPTURE(version);
        testing::server_options so = implicit_server();
        so.tls_max_version = version;
        tls_fixture f(so);
        // Many records per socket read: sizes from a few hundred octets to
        // several records, dots and CRs cut anywhere.
        f.server.add_account("bob", "builder",
                             testing::generate_messages({.count = 60, .median_size = 6000, .size_sigma = 1.2,
                                                         .max_size = 300000, .seed = 9}));
        const auto mail = testing::generate_messages(
            {.count = 60, .median_size = 6000, .size_sigma = 1.2, .max_size = 300000, .seed = 9});
        pop3::test::run(f.ioc, [&]() -> awaitable<void> {
            session s(f.ioc, f.client(transport::implicit_tls));
            co_await s.async_connect("127.0.0.1", f.port(), use_awaitable);
            co_await s.async_login("bob", "builder", use_awaitable);
            const pop3::test::fetched got = co_await pop3::test::fetch_all(s, mail.size());
            CHECK_MESSAGE(!got.ec, got.ec.message());
            CHECK(got.stored() == mail.size());
            CHECK(got.bodies == mail);
        });
    }
}

namespace {

// The maildrop the damaging-link tests fetch.
std::vector<std::string> damaging_link_mail() {
    return testing::generate_messages({.count = 20, .median_size = 2000, .size_sigma = 0.3, .seed = 5});
}

// A fetch over a link that damages one octet of what the server sends, in
// the chosen part of a TLS record at or after `at`: the messages before the
// damage arrive whole and in order, then the session ends with an error,
// which `check_error` judges. With `tiny_records` each octet of the
// server's replies is a record of its own (dozens to a socket read), so the
// bad record is now the first of a read and now behind good ones.
template <class CheckError>
void fetch_over_damaging_link(bool tiny_records, std::uint64_t at, pop3::test::relay::tls_part part,
                              std::chrono::milliseconds reply_timeout, CheckError check_error) {
    const auto mail = damaging_link_mail();
    asio::io_context ioc;
    testing::server server(ioc.get_executor(), implicit_server());
    testing::fault_plan faults;
    faults.one_byte_writes = tiny_records;
    server.add_account("alice", "wonderland", mail, faults);
    REQUIRE(!server.start());
    pop3::test::relay link(server.port());
    pop3::test::run(ioc, [&]() -> awaitable<void> {
        session_options o;
        o.mode = transport::implicit_tls;
        o.tls_context = server.client_tls_context();
        o.reply_timeout = reply_timeout;
        session s(ioc, o);
        co_await s.async_connect("127.0.0.1", std::to_string(link.port()), use_awaitable);
        co_await s.async_login("alice", "wonderland", use_awaitable);
        link.damage_server_tls(at, part);  // counted from the connection's first octet
        const pop3::test::fetched got = co_await pop3::test::fetch_all(s, mail.size());
        check_error(got.ec);
        std::size_t whole = 0;
        for (std::size_t i = 0; i < mail.size(); ++i) {
            if (got.outcome[i]) continue;
            CHECK(got.bodies[i] == mail[i]);  // a message reported stored is exactly the server's
            CHECK(whole == i);                // and only the first ones, in order
            ++whole;
        }
        CHECK(whole > 0);
        CHECK(whole < mail.size());
    });
}

// The octets on the wire of the 20 messages above, with records of one
// octet each (23 on the wire with TLS 1.3's AEAD) or large ones.
std::uint64_t damaging_link_wire(bool tiny_records) {
    const auto mail = damaging_link_mail();
    std::uint64_t octets = 0;
    for (const auto& m : mail) octets += m.size();
    return tiny_records ? octets * 23 : octets;
}

}  // namespace

TEST_CASE("a TLS record damaged on the link: the messages before it arrive whole, then the TLS error") {
    for (bool tiny_records : {false, true}) {
        const std::uint64_t wire = damaging_link_wire(tiny_records);
        for (std::uint64_t at : {wire / 5, wire / 3 + 7, wire / 2 + 1, wire * 3 / 4}) {
            CAPTURE(tiny_records);
            CAPTURE(at);
            fetch_over_damaging_link(tiny_records, at, pop3::test::relay::tls_part::payload, std::chrono::seconds(5),
                                     [](boost::system::error_code ec) {
                                         // The record fails its authentication at once: OpenSSL's
                                         // own reason, as Asio reports it, not a bare "system error".
                                         CHECK_MESSAGE(ec.category() == asio::error::get_ssl_category(),
                                                       ec.message());
                                     });
        }
    }
}

TEST_CASE("a TLS record length damaged on the link: the messages before it arrive whole, then an error, never a hang") {
    // The length's high octet flips. A small record then claims 16 KiB
    // more, still under TLS's limit: the client waits for octets the
    // replies in flight may not hold, and either the reply timeout ends the
    // wait or the octets that fill the record fail its authentication. A
    // full record of 16 KiB shrinks instead, and what follows it is no
    // record header.
    for (bool tiny_records : {false, true}) {
        const std::uint64_t wire = damaging_link_wire(tiny_records);
        for (std::uint64_t at : {wire / 3, wire * 3 / 4}) {
            CAPTURE(tiny_records);
            CAPTURE(at);
            fetch_over_damaging_link(tiny_records, at, pop3::test::relay::tls_part::length,
                                     std::chrono::milliseconds(500), [](boost::system::error_code ec) {
                                         CHECK_MESSAGE((ec == error::timeout ||
                                                        ec.category() == asio::error::get_ssl_category()),
                                                       ec.message());
                                     });
        }
    }
}
