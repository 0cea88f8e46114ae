#include <pop3/capabilities.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pop3::capabilities caps;
    pop3::parser_limits limits;
    limits.max_line = 512;
    const auto ec = pop3::parse_capabilities({reinterpret_cast<const char*>(data), size}, caps, limits);
    if (!ec && caps.all.size() > limits.max_capabilities) __builtin_trap();
    (void)caps.has("TOP");
    return 0;
}
