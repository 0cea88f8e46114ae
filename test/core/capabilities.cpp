#include <pop3/capabilities.hpp>
#include <pop3/line_reader.hpp>

#include "../support/feed.hpp"

#include <doctest/doctest.h>

using namespace pop3;

TEST_CASE("a CAPA reply as Dovecot sends it, streamed through the reply parser") {
    const std::string wire =
        "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\n"
        "SASL PLAIN LOGIN\r\n.\r\n";
    const auto t = pop3::test::grind(reply_shape::multi_line, wire);
    REQUIRE(!t.ec);
    capabilities caps;
    REQUIRE(!parse_capabilities(t.replies[0].body, caps));
    CHECK(caps.top);
    CHECK(caps.uidl);
    CHECK(caps.resp_codes);
    CHECK(caps.pipelining);
    CHECK(caps.auth_resp_code);
    CHECK(caps.stls);
    CHECK(caps.user);
    CHECK(!caps.utf8);
    CHECK(caps.sasl == std::vector<std::string>{"PLAIN", "LOGIN"});
    CHECK(caps.has_sasl("login"));
    CHECK(!caps.has_sasl("CRAM-MD5"));
    CHECK(caps.all.size() == 9);
    CHECK(caps.has("capa"));
}

TEST_CASE("every RFC 2449 capability with its arguments") {
    capabilities caps;
    const std::string body =
        "top\r\nLOGIN-DELAY 900 USER\r\nEXPIRE NEVER\r\nIMPLEMENTATION Shlemazle Plotz-v302  beta\r\n"
        "UTF8 USER\r\nLANG\r\nX-FUTURE a b\r\n";
    REQUIRE(!parse_capabilities(body, caps));
    CHECK(caps.top);
    REQUIRE(caps.login_delay);
    CHECK(caps.login_delay->seconds == 900);
    CHECK(caps.login_delay->per_user);
    REQUIRE(caps.expire);
    CHECK(caps.expire->never);
    CHECK(!caps.expire->per_user);
    CHECK(caps.implementation == "Shlemazle Plotz-v302  beta");
    CHECK(caps.utf8);
    CHECK(caps.utf8_user);
    CHECK(caps.lang);
    REQUIRE(caps.all.back().name == "X-FUTURE");
    CHECK(caps.all.back().args == std::vector<std::string>{"a", "b"});
}

TEST_CASE("EXPIRE and LOGIN-DELAY values") {
    capabilities a;
    REQUIRE(!parse_capabilities("EXPIRE 0\nLOGIN-DELAY 0\n", a));
    CHECK(!a.expire->never);
    CHECK(a.expire->days == 0);
    CHECK(!a.login_delay->per_user);
    capabilities b;
    CHECK(parse_capabilities("EXPIRE soon\r\n", b) == error::not_a_number);
    capabilities c;
    CHECK(parse_capabilities("LOGIN-DELAY -5\r\n", c) == error::negative_number);
    capabilities d;
    CHECK(parse_capabilities("LOGIN-DELAY 99999999999999999999\r\n", d) == error::number_too_large);
    capabilities e;
    CHECK(parse_capabilities("LOGIN-DELAY\r\n", e) == error::not_a_number);
}

TEST_CASE("blank lines are ignored and a last line without CRLF counts") {
    capabilities caps;
    REQUIRE(!parse_capabilities("\r\nTOP\r\n   \r\nUIDL", caps));
    CHECK(caps.top);
    CHECK(caps.uidl);
    CHECK(caps.all.size() == 2);
}

TEST_CASE("caps on CAPA: lines and line length") {
    parser_limits limits;
    limits.max_capabilities = 3;
    capabilities caps;
    CHECK(!parse_capabilities("A\nB\nC\n", caps, limits));
    capabilities over;
    CHECK(parse_capabilities("A\nB\nC\nD\n", over, limits) == error::too_many_capabilities);
    limits.max_line = 10;
    capabilities longline;
    CHECK(parse_capabilities("SASL PLAIN LOGIN\r\n", longline, limits) == error::line_too_long);
}

TEST_CASE("line_reader joins lines across chunks and enforces its cap") {
    line_reader reader{8};
    std::vector<std::string> lines;
    auto collect = [&](std::string_view l) {
        lines.emplace_back(l);
        return error_code{};
    };
    CHECK(!reader.feed("ab", collect));
    CHECK(!reader.feed("c\r", collect));
    CHECK(!reader.feed("\nde\nf", collect));
    CHECK(!reader.finish(collect));
    CHECK(lines == std::vector<std::string>{"abc", "de", "f"});

    line_reader capped{4};
    CHECK(!capped.feed("abc", collect));
    CHECK(capped.feed("de", collect) == error::line_too_long);
    line_reader capped2{4};
    CHECK(capped2.feed("abcde\n", collect) == error::line_too_long);
    CHECK(!capped2.feed("", collect));
}
