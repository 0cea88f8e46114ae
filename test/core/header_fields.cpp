#include <pop3/header_fields.hpp>

#include <doctest/doctest.h>

using namespace pop3;

TEST_CASE("fields, folding and the end of the header block") {
    const std::string msg =
        "From sender@example.org Sat Jan  3 01:05:34 1996\r\n"  // mbox line: not a field
        "Return-Path: <a@example.org>\r\n"
        "Subject: a long\r\n"
        "\tfolded   subject\r\n"
        "  \r\n"
        "X-Empty:\r\n"
        "Received : from x\r\n"
        "bogus line\r\n"
        "\r\n"
        "Body: not a header\r\n";
    std::vector<header_field> fields;
    REQUIRE(!parse_header_fields(msg, fields));
    REQUIRE(fields.size() == 4);
    CHECK(fields[0].name == "Return-Path");
    CHECK(fields[0].value == "<a@example.org>");
    CHECK(fields[1].value == "a long folded   subject");
    CHECK(fields[2].name == "X-Empty");
    CHECK(fields[2].value.empty());
    CHECK(fields[3].name == "Received");
    REQUIRE(find_header(fields, "SUBJECT") != nullptr);
    CHECK(find_header(fields, "subject")->value == "a long folded   subject");
    CHECK(find_header(fields, "Body") == nullptr);
}

TEST_CASE("LF line endings and a header block with no body") {
    std::vector<header_field> fields;
    REQUIRE(!parse_header_fields("A: 1\n B\nC: 2", fields));
    REQUIRE(fields.size() == 2);
    CHECK(fields[0].value == "1 B");
    CHECK(fields[1].value == "2");
}

TEST_CASE("a continuation before any field is dropped") {
    std::vector<header_field> fields;
    REQUIRE(!parse_header_fields(" orphan\r\nA: 1\r\n", fields));
    REQUIRE(fields.size() == 1);
    CHECK(fields[0].value == "1");
}

TEST_CASE("caps on bytes and fields") {
    parser_limits limits;
    limits.max_header_fields = 2;
    std::vector<header_field> fields;
    CHECK(parse_header_fields("A: 1\nB: 2\nC: 3\n", fields, limits) == error::headers_too_large);
    CHECK(fields.size() == 2);
    limits = {};
    limits.max_header_bytes = 16;
    fields.clear();
    CHECK(parse_header_fields("A: 1\nB: 22222222222222\n", fields, limits) == error::headers_too_large);
    fields.clear();
    CHECK(!parse_header_fields("A: 1\n\nB: 22222222222222\n", fields, limits));
}
