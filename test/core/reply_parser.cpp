#include <pop3/reply_parser.hpp>

#include "../support/feed.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace pop3;
using pop3::test::grind;
using pop3::test::transcript;

namespace {
constexpr auto single = reply_shape::single_line;
constexpr auto multi = reply_shape::multi_line;
constexpr auto sasl = reply_shape::sasl;

// The body of a complete multi-line +OK reply, after grinding.
std::string body_of(std::string_view wire) {
    const transcript t = grind(multi, wire);
    REQUIRE_MESSAGE(!t.ec, t.ec.message());
    REQUIRE(t.replies.size() == 1);
    CHECK(t.replies[0].has_body);
    CHECK(t.leftover.empty());
    return t.replies[0].body;
}

error_code error_of(reply_shape shape, std::string_view wire, const parser_limits& limits = {}) {
    return grind(shape, wire, limits).ec;
}
}  // namespace

TEST_SUITE("reply_parser: status lines") {
    TEST_CASE("+OK with text") {
        const transcript t = grind(single, "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
        REQUIRE(!t.ec);
        REQUIRE(t.replies.size() == 1);
        CHECK(t.replies[0].indicator == status_indicator::ok);
        CHECK(t.replies[0].text == "POP3 server ready <1896.697170952@dbc.mtview.ca.us>");
        CHECK(t.replies[0].code.empty());
        CHECK(!t.replies[0].has_body);
    }

    TEST_CASE("bare +OK and -ERR") {
        CHECK(grind(single, "+OK\r\n").replies[0].text.empty());
        const transcript t = grind(single, "-ERR\r\n");
        CHECK(t.replies[0].indicator == status_indicator::err);
        CHECK(t.replies[0].text.empty());
    }

    TEST_CASE("-ERR with response codes") {
        const transcript t = grind(single, "-ERR [IN-USE] maildrop locked\r\n");
        CHECK(t.replies[0].indicator == status_indicator::err);
        CHECK(t.replies[0].code == "IN-USE");
        CHECK(t.replies[0].text == "maildrop locked");
        CHECK(grind(single, "-ERR [SYS/TEMP] try later\r\n").replies[0].code == "SYS/TEMP");
        CHECK(grind(single, "-ERR [AUTH] bad password\r\n").replies[0].text == "bad password");
        // Not a response code: stays in the text.
        CHECK(grind(single, "-ERR [not closed\r\n").replies[0].text == "[not closed");
        CHECK(grind(single, "-ERR [] empty\r\n").replies[0].text == "[] empty");
    }

    TEST_CASE("the status line kinds are case-insensitive, but +OKAY is not +OK") {
        CHECK(grind(single, "+ok fine\r\n").replies[0].indicator == status_indicator::ok);
        CHECK(grind(single, "-err no\r\n").replies[0].indicator == status_indicator::err);
        CHECK(error_of(single, "+OKAY\r\n") == error::bad_status_indicator);
        CHECK(error_of(single, "-ERROR\r\n") == error::bad_status_indicator);
        CHECK(error_of(single, "\r\n") == error::bad_status_indicator);
        CHECK(error_of(single, "OK\r\n") == error::bad_status_indicator);
        CHECK(error_of(single, "* OK IMAP4 ready\r\n") == error::bad_status_indicator);
    }

    TEST_CASE("bare LF ends a status line") {
        const transcript t = grind(single, "+OK hi\n");
        CHECK(!t.ec);
        CHECK(t.replies[0].text == "hi");
    }

    TEST_CASE("a CR inside the status line stays in the text") {
        CHECK(grind(single, "+OK a\rb\r\n").replies[0].text == "a\rb");
    }

    TEST_CASE("NUL in a status line is refused") {
        CHECK(error_of(single, std::string_view("+OK a\0b\r\n", 9)) == error::nul_in_status_line);
    }

    TEST_CASE("the status line cap counts CRLF and holds at any chunking") {
        parser_limits limits;
        limits.max_status_line = 512;
        std::string exact = "+OK " + std::string(512 - 6, 'x') + "\r\n";
        REQUIRE(exact.size() == 512);
        CHECK(!grind(single, exact, limits).ec);
        std::string over = "+OK " + std::string(512 - 5, 'x') + "\r\n";
        CHECK(error_of(single, over, limits) == error::status_line_too_long);
    }

    TEST_CASE("1 MiB without LF fails as soon as the cap is passed") {
        reply_parser p;
        p.start(single);
        std::string buffer;
        error_code ec;
        std::size_t fed = 0;
        while (!ec && fed < (1u << 20)) {
            buffer.append(100, 'x');
            fed += 100;
            const auto r = p.parse(buffer, ec);
            CHECK(r.consumed == 0);
        }
        CHECK(ec == error::status_line_too_long);
        CHECK(fed <= 600);
    }

    TEST_CASE("EOF before or inside the status line") {
        CHECK(error_of(single, "") == error::eof_in_status_line);
        CHECK(error_of(single, "+OK partial") == error::eof_in_status_line);
    }

    TEST_CASE("-ERR to a multi-line command has no body") {
        const transcript t = grind(multi, "-ERR no such message\r\nrest");
        CHECK(!t.ec);
        CHECK(!t.replies[0].has_body);
        CHECK(t.leftover == "rest");
    }
}

TEST_SUITE("reply_parser: SASL continuations") {
    TEST_CASE("a continuation with and without a challenge") {
        const transcript t = grind(sasl, "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+\r\n");
        CHECK(t.replies[0].indicator == status_indicator::continuation);
        CHECK(t.replies[0].text == "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+");
        CHECK(grind(sasl, "+ \r\n").replies[0].text.empty());
        CHECK(grind(sasl, "+\r\n").replies[0].indicator == status_indicator::continuation);
        CHECK(grind(sasl, "+OK logged in\r\n").replies[0].indicator == status_indicator::ok);
        CHECK(grind(sasl, "-ERR [AUTH] no\r\n").replies[0].code == "AUTH");
    }

    TEST_CASE("a continuation outside AUTH is a protocol error") {
        CHECK(error_of(single, "+ abc\r\n") == error::unexpected_continuation);
        CHECK(error_of(multi, "+\r\n") == error::unexpected_continuation);
    }
}

TEST_SUITE("reply_parser: dot-stuffing") {
    TEST_CASE("a plain body keeps its CRLFs") {
        CHECK(body_of("+OK 2 octets\r\nline one\r\nline two\r\n.\r\n") == "line one\r\nline two\r\n");
    }

    TEST_CASE("an empty body") { CHECK(body_of("+OK\r\n.\r\n").empty()); }

    TEST_CASE("..foo is .foo") { CHECK(body_of("+OK\r\n..foo\r\n.\r\n") == ".foo\r\n"); }

    TEST_CASE(".. alone is a lone dot") { CHECK(body_of("+OK\r\n..\r\n.\r\n") == ".\r\n"); }

    TEST_CASE("a lone stuffed dot inside a body") {
        CHECK(body_of("+OK\r\nabove\r\n..\r\nbelow\r\n.\r\n") == "above\r\n.\r\nbelow\r\n");
    }

    TEST_CASE(".foo (unstuffed by a careless server) loses its dot, as RFC 1939 says") {
        CHECK(body_of("+OK\r\n.foo\r\n.\r\n") == "foo\r\n");
    }

    TEST_CASE("\\r.\\r\\n inside a line is data") {
        CHECK(body_of("+OK\r\na\r.\r\n.\r\n") == "a\r.\r\n");
        CHECK(body_of("+OK\r\n\r.\r\n.\r\n") == "\r.\r\n");
    }

    TEST_CASE("\\r\\n.\\rfoo: the dot is stuffing and the CR is data") {
        CHECK(body_of("+OK\r\nx\r\n.\rfoo\r\n.\r\n") == "x\r\n\rfoo\r\n");
    }

    TEST_CASE("three dots") { CHECK(body_of("+OK\r\n...\r\n.\r\n") == "..\r\n"); }

    TEST_CASE("EOF right after the dot, after .\\r, and after \\r\\n.") {
        CHECK(error_of(multi, "+OK\r\nbody\r\n.") == error::eof_in_body);
        CHECK(error_of(multi, "+OK\r\nbody\r\n.\r") == error::eof_in_body);
        CHECK(error_of(multi, "+OK\r\nbody\r\n") == error::eof_in_body);
        CHECK(error_of(multi, "+OK\r\nbody") == error::eof_in_body);
    }

    TEST_CASE("a last line without CRLF does not end the body") {
        // "foo." is not a terminator: the dot is not at the start of a line.
        const transcript t = grind(multi, "+OK\r\nfoo.\r\n");
        CHECK(t.ec == error::eof_in_body);
        CHECK(t.replies[0].body == "foo.\r\n");
        CHECK(body_of("+OK\r\nfoo.\r\n.\r\n") == "foo.\r\n");
    }

    TEST_CASE("bytes after the terminator are left for the next reply") {
        const transcript t = grind(multi, "+OK\r\nbody\r\n.\r\n+OK next\r\n");
        CHECK(!t.ec);
        CHECK(t.replies[0].body == "body\r\n");
        CHECK(t.leftover == "+OK next\r\n");
    }

    TEST_CASE("bare LF line endings, terminator included") {
        CHECK(body_of("+OK\nline\n..dot\n.\n") == "line\n.dot\n");
        CHECK(body_of("+OK\r\nmixed\nends\r\n.\n") == "mixed\nends\r\n");
    }

    TEST_CASE("random bodies of dots, CRs and LFs come back exactly, however the input is cut") {
        // Dense in the octets the parser looks at, and long enough for the
        // scan that takes sixteen octets at a time (and its tail).
        std::mt19937 rng(1939);
        const char alphabet[] = {'.', '.', '\r', '\n', '\n', 'x', 'y', '\0'};
        for (int round = 0; round < 300; ++round) {
            std::string body;
            const std::size_t len = rng() % (round < 250 ? 80 : 4000);
            for (std::size_t i = 0; i < len; ++i) body += alphabet[rng() % sizeof alphabet];
            body += "\r\n";
            std::string wire = "+OK\r\n";
            for (std::size_t i = 0; i < body.size(); ++i) {
                if (body[i] == '.' && (i == 0 || body[i - 1] == '\n')) wire += '.';  // stuffing
                wire += body[i];
            }
            wire += ".\r\n";
            CAPTURE(round);
            if (round < 250) {
                CHECK(body_of(wire) == body);  // every cut in two, and a byte at a time
            } else {
                const transcript t = pop3::test::feed_whole({multi}, wire);
                REQUIRE(!t.ec);
                REQUIRE(t.replies.size() == 1);
                CHECK(t.replies[0].body == body);
                std::vector<std::string> pieces;
                for (std::size_t at = 0; at < wire.size();) {
                    const std::size_t n = 1 + rng() % 40;
                    pieces.push_back(wire.substr(at, n));
                    at += n;
                }
                const transcript cut = pop3::test::feed({multi}, pieces);
                REQUIRE(!cut.ec);
                CHECK(cut.replies[0].body == body);
                CHECK(pop3::test::feed({multi}, pieces, {}, true) == cut);  // parse_in_place
                CHECK(pop3::test::feed({multi}, {wire}, {}, true) == t);
            }
        }
    }

    TEST_CASE("bare CR and NUL in a body are kept byte-exact") {
        const std::string wire("+OK\r\na\rb\0c\r\r\n\r.\r\n.\r\n", 20);
        CHECK(body_of(wire) == std::string("a\rb\0c\r\r\n\r.\r\n", 12));
    }

    TEST_CASE("8-bit octets pass through") {
        CHECK(body_of("+OK\r\n\xC3\xA9t\xE9\xFF\r\n.\r\n") == "\xC3\xA9t\xE9\xFF\r\n");
    }
}

TEST_SUITE("reply_parser: limits and misuse") {
    TEST_CASE("the body cap is exact") {
        parser_limits limits;
        limits.max_body = 6;
        CHECK(!grind(multi, "+OK\r\n12345\n.\r\n", limits).ec);
        CHECK(grind(multi, "+OK\r\n123456\n.\r\n", limits).ec == error::body_too_large);
        // Stuffing dots do not count.
        CHECK(!grind(multi, "+OK\r\n..345\n.\r\n", limits).ec);
    }

    TEST_CASE("bytes with no reply expected are refused") {
        reply_parser p;
        error_code ec;
        auto r = p.parse("", ec);
        CHECK(!ec);
        CHECK(r.event == parse_event::need_more);
        p.parse("+OK\r\n", ec);
        CHECK(ec == error::parser_not_started);
        CHECK(is_fatal(ec));
    }

    TEST_CASE("body_size counts unstuffed octets") {
        reply_parser p;
        p.start(multi);
        std::string buffer = "+OK\r\n..ab\r\n.\r\n";
        error_code ec;
        for (;;) {
            auto r = p.parse(buffer, ec);
            REQUIRE(!ec);
            buffer.erase(0, r.consumed);
            if (p.done()) break;
        }
        CHECK(p.body_size() == 5);
        CHECK(buffer.empty());
    }
}

TEST_SUITE("reply_parser: pipelines") {
    TEST_CASE("replies of different shapes back to back") {
        const std::string wire =
            "+OK 2 320\r\n"                      // STAT
            "+OK scan listing\r\n1 120\r\n2 200\r\n.\r\n"  // LIST
            "-ERR [SYS/TEMP] no such message\r\n"  // RETR 3 (multi, -ERR)
            "+OK\r\n..x\r\n.\r\n"                // RETR 1
            "+OK bye\r\n";                       // QUIT
        const transcript t = grind({single, multi, multi, multi, single}, wire);
        REQUIRE(!t.ec);
        REQUIRE(t.replies.size() == 5);
        CHECK(t.replies[0].text == "2 320");
        CHECK(t.replies[1].body == "1 120\r\n2 200\r\n");
        CHECK(t.replies[2].indicator == status_indicator::err);
        CHECK(t.replies[2].code == "SYS/TEMP");
        CHECK(t.replies[3].body == ".x\r\n");
        CHECK(t.replies[4].text == "bye");
        CHECK(t.leftover.empty());
    }

    TEST_CASE("the terminator split at every offset, with the next reply behind it") {
        // grind() already cuts everywhere; this spells the cases out.
        const std::string wire = "+OK\r\nz\r\n.\r\n-ERR x\r\n";
        for (std::size_t cut = 5; cut <= wire.size(); ++cut) {
            const transcript t = pop3::test::feed({multi, single}, {wire.substr(0, cut), wire.substr(cut)});
            CHECK(!t.ec);
            CHECK(t.replies[0].body == "z\r\n");
            CHECK(t.replies[1].indicator == status_indicator::err);
        }
    }
}
