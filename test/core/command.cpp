#include <pop3/command.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace pop3;
using k = pop3::command_kind;

namespace {
std::string enc(command_kind kind, std::initializer_list<std::string_view> args = {},
                const encode_options& options = {}) {
    std::string out;
    const error_code ec = encode_command(out, kind, args, options);
    REQUIRE_MESSAGE(!ec, ec.message());
    return out;
}

error_code fails(command_kind kind, std::initializer_list<std::string_view> args,
                 const encode_options& options = {}) {
    std::string out = "kept";
    const error_code ec = encode_command(out, kind, args, options);
    CHECK(out == "kept");  // nothing appended on error
    return ec;
}
}  // namespace

TEST_CASE("every command's encoding") {
    CHECK(enc(k::user, {"mrose"}) == "USER mrose\r\n");
    CHECK(enc(k::pass, {"secret"}) == "PASS secret\r\n");
    CHECK(enc(k::apop, {"mrose", "c4c9334bac560ecc979e58001b3e22fb"}) ==
          "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
    CHECK(enc(k::auth, {"PLAIN"}) == "AUTH PLAIN\r\n");
    CHECK(enc(k::auth, {"PLAIN", "AHRlc3QAdGVzdA=="}) == "AUTH PLAIN AHRlc3QAdGVzdA==\r\n");
    CHECK(enc(k::auth, {"EXTERNAL", "="}) == "AUTH EXTERNAL =\r\n");
    CHECK(enc(k::stat) == "STAT\r\n");
    CHECK(enc(k::list) == "LIST\r\n");
    CHECK(enc(k::list, {"2"}) == "LIST 2\r\n");
    CHECK(enc(k::retr, {"1"}) == "RETR 1\r\n");
    CHECK(enc(k::dele, {"10"}) == "DELE 10\r\n");
    CHECK(enc(k::noop) == "NOOP\r\n");
    CHECK(enc(k::rset) == "RSET\r\n");
    CHECK(enc(k::quit) == "QUIT\r\n");
    CHECK(enc(k::top, {"1", "0"}) == "TOP 1 0\r\n");
    CHECK(enc(k::uidl) == "UIDL\r\n");
    CHECK(enc(k::uidl, {"3"}) == "UIDL 3\r\n");
    CHECK(enc(k::capa) == "CAPA\r\n");
    CHECK(enc(k::stls) == "STLS\r\n");
    CHECK(enc(k::utf8) == "UTF8\r\n");
    CHECK(enc(k::lang) == "LANG\r\n");
    CHECK(enc(k::lang, {"fr"}) == "LANG fr\r\n");
    CHECK(enc(k::last) == "LAST\r\n");
}

TEST_CASE("number conveniences") {
    std::string out;
    CHECK(!encode_command(out, k::retr, 18446744073709551615ull));
    CHECK(!encode_command(out, k::dele, 7));
    CHECK(!encode_top(out, 3, 0));
    CHECK(out == "RETR 18446744073709551615\r\nDELE 7\r\nTOP 3 0\r\n");
    CHECK(encode_command(out, k::retr, 0) == error::invalid_message_number);
    CHECK(encode_top(out, 0, 5) == error::invalid_message_number);
    CHECK(encode_command(out, k::stat, 1) == error::wrong_argument_count);
}

TEST_CASE("CR, LF and NUL never reach the wire") {
    CHECK(fails(k::user, {"bob\r\nDELE 1"}) == error::argument_has_forbidden_char);
    CHECK(fails(k::pass, {"pw\n"}) == error::argument_has_forbidden_char);
    CHECK(fails(k::pass, {std::string_view("p\0w", 3)}) == error::argument_has_forbidden_char);
    CHECK(fails(k::apop, {"bob", "\rx"}) == error::argument_has_forbidden_char);
    CHECK(fails(k::auth, {"PLAIN", "AA\r\n"}) == error::argument_has_forbidden_char);
    CHECK(fails(k::lang, {"e\rn"}) == error::argument_has_forbidden_char);
    // Even with the length opt-out.
    encode_options long_ok;
    long_ok.allow_long_arguments = true;
    CHECK(fails(k::user, {"a\nb"}, long_ok) == error::argument_has_forbidden_char);
}

TEST_CASE("argument validation") {
    CHECK(fails(k::user, {""}) == error::argument_empty);
    CHECK(fails(k::user, {"two words"}) == error::argument_has_space);
    CHECK(fails(k::apop, {"bob smith", "x"}) == error::argument_has_space);
    CHECK(enc(k::pass, {"pass with spaces"}) == "PASS pass with spaces\r\n");
    CHECK(fails(k::retr, {"0"}) == error::invalid_message_number);
    CHECK(fails(k::retr, {"00"}) == error::invalid_message_number);
    CHECK(fails(k::retr, {"-1"}) == error::invalid_message_number);
    CHECK(fails(k::retr, {"1a"}) == error::invalid_message_number);
    CHECK(fails(k::top, {"1", "x"}) == error::invalid_message_number);
    CHECK(fails(k::auth, {"PLAIN", "not base64!"}) == error::invalid_sasl_response);
    CHECK(fails(k::auth, {"PLAIN", ""}) == error::argument_empty);
}

TEST_CASE("arity") {
    CHECK(fails(k::stat, {"1"}) == error::wrong_argument_count);
    CHECK(fails(k::user, {}) == error::wrong_argument_count);
    CHECK(fails(k::apop, {"bob"}) == error::wrong_argument_count);
    CHECK(fails(k::top, {"1"}) == error::wrong_argument_count);
    CHECK(fails(k::list, {"1", "2"}) == error::wrong_argument_count);
    CHECK(fails(k::auth, {"PLAIN", "AA==", "x"}) == error::wrong_argument_count);
}

TEST_CASE("RFC length limits, and the explicit opt-out") {
    const std::string forty(40, 'u');
    const std::string forty_one(41, 'u');
    CHECK(enc(k::user, {forty}) == "USER " + forty + "\r\n");
    CHECK(fails(k::user, {forty_one}) == error::argument_too_long);
    CHECK(fails(k::pass, {forty_one}) == error::argument_too_long);

    encode_options long_ok;
    long_ok.allow_long_arguments = true;
    CHECK(enc(k::user, {forty_one}, long_ok) == "USER " + forty_one + "\r\n");

    // AUTH's initial response is not bound by 40 octets, only by the 255
    // octets of the command line (RFC 5034 section 4).
    const std::string fits(255 - std::string_view("AUTH PLAIN \r\n").size(), 'A');
    REQUIRE(fits.size() % 4 == 2);
    const std::string fits4 = fits.substr(0, fits.size() - 2);  // base64 needs a multiple of 4
    CHECK(enc(k::auth, {"PLAIN", fits4}).size() == 253);
    const std::string too_long(244, 'A');  // 13 + 244 = 257 octets
    CHECK(fails(k::auth, {"PLAIN", too_long}) == error::command_too_long);
    CHECK(enc(k::auth, {"XOAUTH2", std::string(4000, 'A')}, long_ok).size() == 4000 + 15);
    CHECK(fails(k::auth, {"XOAUTH2", std::string(hard_max_command, 'A')}, long_ok) ==
          error::command_too_long);
}

TEST_CASE("reply shapes") {
    CHECK(shape_of(k::list, 0) == reply_shape::multi_line);
    CHECK(shape_of(k::list, 1) == reply_shape::single_line);
    CHECK(shape_of(k::uidl, 0) == reply_shape::multi_line);
    CHECK(shape_of(k::uidl, 1) == reply_shape::single_line);
    CHECK(shape_of(k::retr, 1) == reply_shape::multi_line);
    CHECK(shape_of(k::top, 2) == reply_shape::multi_line);
    CHECK(shape_of(k::capa, 0) == reply_shape::multi_line);
    CHECK(shape_of(k::lang, 0) == reply_shape::multi_line);
    CHECK(shape_of(k::lang, 1) == reply_shape::single_line);
    CHECK(shape_of(k::auth, 1) == reply_shape::sasl);
    for (auto kind : {k::user, k::pass, k::apop, k::stat, k::dele, k::noop, k::rset, k::quit,
                      k::stls, k::utf8, k::last})
        CHECK(shape_of(kind, 1) == reply_shape::single_line);
    CHECK(keyword(k::retr) == "RETR");
    CHECK(keyword(k::last) == "LAST");
}

TEST_CASE("secrets are flagged for redaction") {
    CHECK(carries_secret(k::pass));
    CHECK(carries_secret(k::auth));
    CHECK(!carries_secret(k::user));
    CHECK(!carries_secret(k::apop));  // the digest is not the secret
}

TEST_CASE("SASL continuation lines") {
    std::string out;
    CHECK(!encode_sasl_response(out, "dGVzdA=="));
    CHECK(!encode_sasl_response(out, ""));
    CHECK(!encode_sasl_response(out, "*"));
    CHECK(out == "dGVzdA==\r\n\r\n*\r\n");
    CHECK(encode_sasl_response(out, "a\r\nQUIT") == error::argument_has_forbidden_char);
    CHECK(encode_sasl_response(out, "abc") == error::invalid_sasl_response);
}

TEST_CASE("strict base64") {
    CHECK(is_base64(""));
    CHECK(is_base64("QQ=="));
    CHECK(is_base64("QUI="));
    CHECK(is_base64("QUJD"));
    CHECK(!is_base64("QQ="));
    CHECK(!is_base64("Q==="));
    CHECK(!is_base64("QQ==QUJD"));
    CHECK(!is_base64("QU JD"));
    CHECK(!is_base64("QUJ-"));
}
