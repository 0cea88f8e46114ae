#include <pop3/diagnostics.hpp>
#include <pop3/error.hpp>
#include <pop3/response_code.hpp>

#include <boost/system/system_error.hpp>
#include <doctest/doctest.h>

#include <set>
#include <system_error>

using namespace pop3;

TEST_CASE("every code has its own message in the pop3 category") {
    std::set<std::string> messages;
    for (int v = static_cast<int>(error::server_refused); v <= static_cast<int>(error::reply_out_of_step); ++v) {
        const error_code ec = make_error_code(static_cast<error>(v));
        CHECK(ec.category().name() == std::string("pop3"));
        CHECK(ec.message() != "unknown pop3 error");
        messages.insert(ec.message());
    }
    CHECK(messages.size() ==
          static_cast<std::size_t>(error::reply_out_of_step) - static_cast<std::size_t>(error::server_refused) + 1);
}

TEST_CASE("classification: refused, usage, malformed, fatal") {
    CHECK(classify({}) == error_class::none);
    CHECK(classify(error::server_refused) == error_class::server_refused);
    CHECK(!is_fatal(error::server_refused));
    CHECK(classify(error::argument_has_forbidden_char) == error_class::usage);
    CHECK(classify(error::invalid_sasl_response) == error_class::usage);
    CHECK(classify(error::status_line_too_long) == error_class::stream_unusable);
    CHECK(classify(error::eof_in_body) == error_class::stream_unusable);
    CHECK(classify(error::parser_not_started) == error_class::stream_unusable);
    CHECK(classify(error::line_too_long) == error_class::malformed_reply);
    CHECK(classify(error::headers_too_large) == error_class::malformed_reply);
    CHECK(classify(error::certificate_pin_mismatch) == error_class::stream_unusable);
    CHECK(!is_fatal(error::uid_too_long));
    CHECK(classify(error::wrong_state) == error_class::usage);
    CHECK(classify(error::plaintext_auth_refused) == error_class::usage);
    CHECK(classify(error::message_too_large) == error_class::malformed_reply);
    CHECK(is_fatal(error::timeout));
    CHECK(is_fatal(error::session_failed));
    CHECK(is_fatal(error::connection_closed));
    CHECK(classify(error::too_many_entries) == error_class::malformed_reply);
    CHECK(classify(error::duplicate_message_number) == error_class::malformed_reply);
    CHECK(is_fatal(error::reply_out_of_step));
    // Errors from other layers (sockets, TLS, timers) end the session.
    CHECK(is_fatal(boost::system::errc::make_error_code(boost::system::errc::connection_reset)));
}

TEST_CASE("codes interoperate with std::error_code and exceptions") {
    const error_code ec = error::eof_in_body;
    const std::error_code std_ec = ec;
    CHECK(std_ec.message() == ec.message());
    CHECK(ec == error::eof_in_body);
    CHECK(ec != error::eof_in_status_line);
    CHECK_THROWS_AS(throw boost::system::system_error(ec), boost::system::system_error);
}

TEST_CASE("response codes") {
    CHECK(classify_response_code("IN-USE") == response_code_kind::in_use);
    CHECK(classify_response_code("LOGIN-DELAY") == response_code_kind::login_delay);
    CHECK(classify_response_code("SYS/TEMP") == response_code_kind::sys_temp);
    CHECK(classify_response_code("SYS/TEMP/QUOTA") == response_code_kind::sys_temp);
    CHECK(classify_response_code("SYS/PERM") == response_code_kind::sys_perm);
    CHECK(classify_response_code("SYS") == response_code_kind::unknown);
    CHECK(classify_response_code("SYSTEM") == response_code_kind::unknown);
    CHECK(classify_response_code("auth") == response_code_kind::auth);
    CHECK(classify_response_code("UTF8") == response_code_kind::utf8);
    CHECK(classify_response_code("X-VENDOR") == response_code_kind::unknown);

    response_code code;
    std::string_view rest;
    split_response_code("[IN-USE/X] locked", code, rest);
    CHECK(code.kind == response_code_kind::in_use);
    CHECK(code.text == "IN-USE/X");
    CHECK(rest == "locked");
    CHECK(code.is_transient());
    split_response_code("[A//B] x", code, rest);
    CHECK(code.kind == response_code_kind::none);
    CHECK(rest == "[A//B] x");
    split_response_code("[A B] x", code, rest);
    CHECK(code.kind == response_code_kind::none);
    split_response_code("[AUTH]", code, rest);
    CHECK(code.kind == response_code_kind::auth);
    CHECK(!code.is_transient());
    CHECK(rest.empty());
}

TEST_CASE("diagnostics keep the server's words apart, and print them safely") {
    diagnostics d;
    response_code code{response_code_kind::sys_temp, "SYS/TEMP"};
    d.assign_server(code, "disk full");
    d.assign_client("RETR 3 for alice@example.org");
    CHECK(d.server_message() == "disk full");
    CHECK(d.code().kind == response_code_kind::sys_temp);
    CHECK(d.client_message() == "RETR 3 for alice@example.org");
    d.clear();
    CHECK(d.server_message().empty());
    CHECK(d.code().kind == response_code_kind::none);

    CHECK(printable("plain text") == "plain text");
    CHECK(printable("caf\xC3\xA9") == "caf\xC3\xA9");
    CHECK(printable("bad \xFF\x01 \x1B[31m") == "bad \\xFF\\x01 \\x1B[31m");
    CHECK(printable("\xED\xA0\x80") == "\\xED\\xA0\\x80");  // a UTF-16 surrogate
    CHECK(printable("\xC3") == "\\xC3");                    // truncated sequence
    CHECK(printable("back\\slash") == "back\\\\slash");
    const std::string huge(100000, 'e');
    const std::string cut = printable(huge, 100);
    CHECK(cut.size() == 103);
    CHECK(cut.substr(100) == "...");
}
