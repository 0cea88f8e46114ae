#include <pop3/header_fields.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pop3::parser_limits limits;
    limits.max_header_fields = 64;
    std::vector<pop3::header_field> fields;
    (void)pop3::parse_header_fields({reinterpret_cast<const char*>(data), size}, fields, limits);
    if (fields.size() > limits.max_header_fields) __builtin_trap();
    for (const auto& f : fields)
        if (f.name.empty() || f.name.find(':') != std::string::npos) __builtin_trap();
    return 0;
}
