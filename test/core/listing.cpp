#include <pop3/listing.hpp>

#include <doctest/doctest.h>

using namespace pop3;

TEST_CASE("numbers: every way to be wrong has its own error") {
    std::uint64_t n = 7;
    CHECK(!parse_number("0", n));
    CHECK(n == 0);
    CHECK(!parse_number("18446744073709551615", n));
    CHECK(n == UINT64_MAX);
    CHECK(parse_number("18446744073709551616", n) == error::number_too_large);
    CHECK(parse_number("99999999999999999999999", n) == error::number_too_large);
    CHECK(parse_number("-1", n) == error::negative_number);
    CHECK(parse_number("-", n) == error::not_a_number);
    CHECK(parse_number("12a", n) == error::not_a_number);
    CHECK(parse_number("+5", n) == error::not_a_number);
    CHECK(parse_number("", n) == error::not_a_number);
    CHECK(n == UINT64_MAX);  // unchanged on error
}

TEST_CASE("STAT") {
    stat_info s;
    REQUIRE(!parse_stat("2 320", s));
    CHECK(s.count == 2);
    CHECK(s.octets == 320);
    REQUIRE(!parse_stat("2147483648 0 messages", s));  // 2^31: no preallocation anywhere
    CHECK(s.count == 2147483648ull);
    CHECK(parse_stat("2", s) == error::bad_listing_line);
    CHECK(parse_stat("", s) == error::bad_listing_line);
    CHECK(parse_stat("2 -1", s) == error::negative_number);
    CHECK(parse_stat("two 320", s) == error::not_a_number);
    CHECK(parse_stat("1 18446744073709551616", s) == error::number_too_large);
}

TEST_CASE("LIST lines") {
    list_entry e;
    REQUIRE(!parse_list_line("1 120", e));
    CHECK(e.number == 1);
    CHECK(e.octets == 120);
    REQUIRE(!parse_list_line("3  4000 extra info", e));
    CHECK(e.number == 3);
    CHECK(e.octets == 4000);
    CHECK(parse_list_line("0 10", e) == error::bad_listing_line);
    CHECK(parse_list_line("1", e) == error::bad_listing_line);
    CHECK(parse_list_line("1 -1", e) == error::negative_number);
    CHECK(parse_list_line("1 big", e) == error::not_a_number);
}

TEST_CASE("UIDL lines and UID rules") {
    uidl_entry e;
    REQUIRE(!parse_uidl_line("1 whqtswO00WBw418f9t5JxYwZ", e));
    CHECK(e.number == 1);
    CHECK(e.uid == "whqtswO00WBw418f9t5JxYwZ");
    const std::string seventy(70, '~');
    REQUIRE(!parse_uidl_line("2 " + seventy, e));
    CHECK(e.uid == seventy);
    CHECK(parse_uidl_line("2 " + std::string(71, 'a'), e) == error::uid_too_long);
    CHECK(parse_uidl_line("2 " + std::string(1 << 20, 'a'), e) == error::uid_too_long);
    CHECK(parse_uidl_line("2", e) == error::uid_empty);
    CHECK(parse_uidl_line("2 ab\x01", e) == error::uid_bad_char);
    CHECK(parse_uidl_line("2 ab\x7F", e) == error::uid_bad_char);
    CHECK(parse_uidl_line("2 \xC3\xA9", e) == error::uid_bad_char);
    CHECK(parse_uidl_line("2 two words", e) == error::uid_bad_char);
    CHECK(parse_uidl_line("x abc", e) == error::not_a_number);
    CHECK(parse_uidl_line("0 abc", e) == error::bad_listing_line);
    CHECK(e.uid == seventy);  // unchanged on error
    CHECK(check_uid("!") == error_code{});
}
