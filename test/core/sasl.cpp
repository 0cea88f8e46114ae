#include <pop3/sasl.hpp>

#include <doctest/doctest.h>

using namespace pop3;
using m = auth_mechanism;

namespace {
credentials creds(std::string user, std::string password) {
    credentials c;
    c.user = std::move(user);
    c.password = std::move(password);
    return c;
}
}  // namespace

TEST_CASE("base64: round trips and strict decoding") {
    for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                         std::string("\0\xff\x10", 3)})
        CHECK(base64_decode(base64_encode(s)) == s);
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(!base64_decode("Zm9"));
    CHECK(!base64_decode("Zm9v\r\n"));
    CHECK(!base64_decode("Zm=v"));
    CHECK(!base64_decode("Zm9vYmFy", 5));  // over the cap
    CHECK(base64_decode("Zm9vYmFy", 6) == std::string("foobar"));
}

TEST_CASE("mechanism names") {
    CHECK(parse_mechanism("scram-sha-256") == m::scram_sha_256);
    CHECK(parse_mechanism("USER") == m::user_pass);
    CHECK(parse_mechanism("auto") == m::automatic);
    CHECK(!parse_mechanism("gssapi"));
    CHECK(mechanism_name(m::cram_md5) == "CRAM-MD5");
}

TEST_CASE("credentials with CR, LF or NUL are refused locally") {
    credentials c = creds("user", "pass\r\nDELE 1");
    CHECK(check_credentials(c) == error::argument_has_forbidden_char);
    c.password = std::string("pa\0ss", 5);
    CHECK(check_credentials(c) == error::argument_has_forbidden_char);
    c.password = "fine pass";
    c.user = "a\nb";
    CHECK(check_credentials(c) == error::argument_has_forbidden_char);
    c.user = "ok";
    CHECK(!check_credentials(c));
}

TEST_CASE("PLAIN, LOGIN, EXTERNAL") {
    credentials c = creds("tim", "tanstaaf");
    auto plain = make_sasl_client(m::plain, c);
    CHECK(plain->start() == std::string("\0tim\0tanstaaf", 13));
    auto login = make_sasl_client(m::login, c);
    CHECK(!login->start());
    std::string r;
    CHECK(!login->step("Username:", r));
    CHECK(r == "tim");
    CHECK(!login->step("Password:", r));
    CHECK(r == "tanstaaf");
    CHECK(login->step("More?", r) == error::sasl_bad_challenge);
    auto external = make_sasl_client(m::external, c);
    CHECK(external->start() == std::string());
}

TEST_CASE("CRAM-MD5: the RFC 2195 example") {
    credentials c = creds("tim", "tanstaaftanstaaf");
    auto cram = make_sasl_client(m::cram_md5, c);
    CHECK(!cram->start());
    std::string r;
    REQUIRE(!cram->step("<1896.697170952@postoffice.reston.mci.net>", r));
    CHECK(r == "tim b913a602c7eda7a495b4e6e7334d3890");
}

TEST_CASE("SCRAM-SHA-1: the RFC 5802 exchange") {
    credentials c = creds("user", "pencil");
    auto scram = make_sasl_client(m::scram_sha_1, c, {}, "fyko+d2lbbFgONRv9qkxdawL");
    CHECK(scram->start() == "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    std::string r;
    REQUIRE(!scram->step("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096", r));
    CHECK(r == "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    CHECK(scram->finish() == error::server_signature_mismatch);  // not verified yet
    REQUIRE(!scram->step("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", r));
    CHECK(r.empty());
    CHECK(!scram->finish());
}

TEST_CASE("SCRAM-SHA-256: the RFC 7677 exchange") {
    credentials c = creds("user", "pencil");
    auto scram = make_sasl_client(m::scram_sha_256, c, {}, "rOprNGfwEbeRWgbNEkqO");
    CHECK(scram->start() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    std::string r;
    REQUIRE(!scram->step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", r));
    CHECK(r == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    REQUIRE(!scram->step("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", r));
    CHECK(!scram->finish());
}

TEST_CASE("SCRAM refuses a server that cannot prove itself, or plays games") {
    credentials c = creds("user", "pencil");
    const std::string first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    std::string r;
    auto wrong_sig = make_sasl_client(m::scram_sha_256, c, {}, "rOprNGfwEbeRWgbNEkqO");
    wrong_sig->start();
    REQUIRE(!wrong_sig->step(first, r));
    CHECK(wrong_sig->step("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", r) == error::server_signature_mismatch);
    CHECK(wrong_sig->finish() == error::server_signature_mismatch);

    auto error_final = make_sasl_client(m::scram_sha_256, c, {}, "rOprNGfwEbeRWgbNEkqO");
    error_final->start();
    REQUIRE(!error_final->step(first, r));
    CHECK(error_final->step("e=invalid-proof", r) == error::server_signature_mismatch);

    auto other_nonce = make_sasl_client(m::scram_sha_256, c, {}, "rOprNGfwEbeRWgbNEkqO");
    other_nonce->start();
    CHECK(other_nonce->step("r=somebody-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", r) == error::sasl_bad_challenge);

    auto slow = make_sasl_client(m::scram_sha_256, c, {}, "rOprNGfwEbeRWgbNEkqO");
    slow->start();
    CHECK(slow->step("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999", r) == error::sasl_bad_challenge);

    auto extension = make_sasl_client(m::scram_sha_256, c, {}, "rOprNGfwEbeRWgbNEkqO");
    extension->start();
    CHECK(extension->step("m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", r) ==
          error::sasl_bad_challenge);

    // User names with "," and "=" are escaped (RFC 5802 saslname).
    credentials odd = creds("a,b=c", "pw");
    CHECK(make_sasl_client(m::scram_sha_1, odd, {}, "N")->start() == "n,,n=a=2Cb=3Dc,r=N");
}

TEST_CASE("XOAUTH2 and OAUTHBEARER") {
    credentials c = creds("someone@example.com", "");
    auto x = make_sasl_client(m::xoauth2, c, "ya29.token");
    CHECK(x->start() == "user=someone@example.com\x01" "auth=Bearer ya29.token\x01\x01");
    std::string r = "x";
    CHECK(!x->step("{\"status\":\"401\"}", r));  // the server's error JSON
    CHECK(r.empty());
    auto o = make_sasl_client(m::oauthbearer, c, "tok");
    CHECK(o->start() == "n,a=someone@example.com,\x01" "auth=Bearer tok\x01\x01");
    CHECK(!o->step("{\"status\":\"invalid_token\"}", r));
    CHECK(r == "\x01");
}

TEST_CASE("the mechanism policy, as a table") {
    capabilities dovecot;  // SASL PLAIN LOGIN, USER
    REQUIRE(!parse_capabilities("USER\r\nSASL PLAIN LOGIN\r\n", dovecot));
    capabilities strong;
    REQUIRE(!parse_capabilities("USER\r\nSASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256\r\n", strong));
    capabilities oauth;
    REQUIRE(!parse_capabilities("SASL XOAUTH2 OAUTHBEARER PLAIN\r\n", oauth));
    capabilities user_only;
    REQUIRE(!parse_capabilities("USER\r\nTOP\r\n", user_only));
    capabilities nothing;
    REQUIRE(!parse_capabilities("TOP\r\n", nothing));

    credentials pw = creds("u", "p");
    credentials tok = creds("u", "");
    tok.oauth_token = [](std::string& t) {
        t = "token";
        return error_code{};
    };
    credentials cert = creds("u", "");
    cert.client_certificate = true;
    auto with = [](credentials c, m mech) {
        c.mechanism = mech;
        return c;
    };

    struct row {
        const char* what;
        credentials creds;
        const capabilities* caps;
        bool apop, tls, allow_plain;
        error_code expected_ec;
        m expected;
    };
    const row table[] = {
        {"strongest over TLS", pw, &strong, true, true, false, {}, m::scram_sha_256},
        {"strongest without TLS needs no cleartext", pw, &strong, false, false, false, {}, m::scram_sha_256},
        {"Dovecot's default over TLS", pw, &dovecot, false, true, false, {}, m::plain},
        {"Dovecot's default without TLS: refused", pw, &dovecot, false, false, false, error::plaintext_auth_refused, m::automatic},
        {"Dovecot's default without TLS, allowed", pw, &dovecot, false, false, true, {}, m::plain},
        {"APOP only over TLS when automatic", pw, &user_only, true, true, false, {}, m::apop},
        {"APOP never automatic without TLS", pw, &user_only, true, false, false, error::plaintext_auth_refused, m::automatic},
        {"APOP asked for explicitly, without TLS", with(pw, m::apop), &user_only, true, false, false, {}, m::apop},
        {"APOP asked for, no timestamp", with(pw, m::apop), &user_only, false, true, false, error::mechanism_not_offered, m::automatic},
        {"USER/PASS over TLS", pw, &user_only, false, true, false, {}, m::user_pass},
        {"no CAPA: USER/PASS is the baseline", pw, nullptr, false, true, false, {}, m::user_pass},
        {"nothing to log in with", pw, &nothing, false, true, false, error::mechanism_not_offered, m::automatic},
        {"asked for CRAM-MD5, not offered: no fallback", with(pw, m::cram_md5), &dovecot, false, true, false, error::mechanism_not_offered, m::automatic},
        {"asked for PLAIN without TLS", with(pw, m::plain), &dovecot, false, false, false, error::plaintext_auth_refused, m::automatic},
        {"OAuth prefers OAUTHBEARER", tok, &oauth, false, true, false, {}, m::oauthbearer},
        {"XOAUTH2 when asked", with(tok, m::xoauth2), &oauth, false, true, false, {}, m::xoauth2},
        {"OAuth tokens are secrets too", tok, &oauth, false, false, false, error::plaintext_auth_refused, m::automatic},
        {"no token: no OAuth", pw, &oauth, false, true, false, {}, m::plain},
        {"EXTERNAL with a client certificate", cert, &strong, false, true, false, error::mechanism_not_offered, m::automatic},
    };
    for (const row& r : table) {
        INFO(std::string(r.what));
        auth_context ctx{r.caps, r.apop, r.tls, r.allow_plain};
        m chosen = m::automatic;
        const error_code ec = choose_mechanism(r.creds, ctx, chosen);
        CHECK(ec == r.expected_ec);
        if (!ec) CHECK(mechanism_name(chosen) == mechanism_name(r.expected));
    }
    capabilities ext;
    REQUIRE(!parse_capabilities("SASL EXTERNAL PLAIN\r\n", ext));
    m chosen{};
    CHECK(!choose_mechanism(cert, {&ext, false, true, false}, chosen));
    CHECK(chosen == m::external);
}
