// A greeting: the status line, then the APOP timestamp in its text.
#include <pop3/apop.hpp>
#include <pop3/reply_parser.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view wire(reinterpret_cast<const char*>(data), size);
    pop3::reply_parser parser;
    parser.start(pop3::reply_shape::single_line);
    pop3::error_code ec;
    const auto r = parser.parse(wire, ec);
    if (ec || r.event != pop3::parse_event::status) return 0;
    std::string_view ts;
    if (!pop3::find_apop_timestamp(parser.status().text, ts)) {
        if (ts.size() < 5 || ts.front() != '<' || ts.back() != '>') __builtin_trap();
        (void)pop3::apop_digest(ts, "secret");
    }
    return 0;
}
