#include <pop3/apop.hpp>

#include <doctest/doctest.h>

using namespace pop3;

TEST_CASE("the RFC 1939 APOP example") {
    std::string_view ts;
    REQUIRE(!find_apop_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>", ts));
    CHECK(ts == "<1896.697170952@dbc.mtview.ca.us>");
    CHECK(apop_digest(ts, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb");
}

TEST_CASE("only the msg-id form is a timestamp") {
    std::string_view ts;
    CHECK(find_apop_timestamp("ready", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <1234>", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <@host>", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <a@>", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <a@b@c>", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <a b@c>", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <a\x01@c>", ts) == error::no_apop_timestamp);
    CHECK(find_apop_timestamp("ready <a@c", ts) == error::no_apop_timestamp);
    // A broken candidate does not hide a good one behind it.
    REQUIRE(!find_apop_timestamp("v1.0 <beta> <1.2@host>", ts));
    CHECK(ts == "<1.2@host>");
    REQUIRE(!find_apop_timestamp("<<x@y>", ts));
    CHECK(ts == "<x@y>");
}
