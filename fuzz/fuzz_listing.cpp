// STAT text, LIST and UIDL lines: every line of the input through each parser.
#include <pop3/line_reader.hpp>
#include <pop3/listing.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pop3::line_reader reader{4096};
    auto on_line = [](std::string_view line) {
        pop3::stat_info s;
        (void)pop3::parse_stat(line, s);
        pop3::list_entry l;
        if (!pop3::parse_list_line(line, l) && l.number == 0) __builtin_trap();
        pop3::uidl_entry u;
        if (!pop3::parse_uidl_line(line, u) && pop3::check_uid(u.uid)) __builtin_trap();
        return pop3::error_code{};
    };
    if (!reader.feed({reinterpret_cast<const char*>(data), size}, on_line)) (void)reader.finish(on_line);
    return 0;
}
