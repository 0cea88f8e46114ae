// Replies, fed whole and in chunks chosen by the input, through parse() and
// parse_in_place(): every feeding must give the same events, and no call may
// consume more than it was given (nor, in place, touch what it did not
// consume).
#include <pop3/reply_parser.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

struct outcome {
    std::string trace;  // statuses and bodies, in order
    pop3::error_code ec;
    std::size_t leftover = 0;
};

outcome run(pop3::reply_shape shape, std::string_view wire, std::size_t chunk, bool in_place) {
    outcome out;
    pop3::parser_limits limits;
    limits.max_body = 1 << 16;
    pop3::reply_parser parser{limits};
    parser.start(shape);
    std::string buffer;
    std::size_t offset = 0;
    while (true) {
        const std::size_t n = std::min(chunk, wire.size() - offset);
        buffer.append(wire.substr(offset, n));
        offset += n;
        while (!parser.done()) {
            pop3::error_code ec;
            const std::string before = in_place ? buffer : std::string();
            const auto r = in_place ? parser.parse_in_place(buffer.data(), buffer.size(), ec) : parser.parse(buffer, ec);
            if (ec) {
                out.ec = ec;
                return out;
            }
            if (r.consumed > buffer.size()) std::abort();
            if (in_place && buffer.compare(r.consumed, std::string::npos, before, r.consumed) != 0) std::abort();
            if (r.event == pop3::parse_event::status) {
                out.trace += static_cast<char>('0' + static_cast<int>(parser.status().indicator));
                out.trace += parser.status().code.text;
                out.trace += '|';
                out.trace += parser.status().text;
                out.trace += '\n';
            } else if (r.event == pop3::parse_event::body) {
                if (r.body.empty()) std::abort();
                out.trace += r.body;
            }
            buffer.erase(0, r.consumed);
            if (r.event == pop3::parse_event::need_more) break;
        }
        if (parser.done()) break;
        if (offset == wire.size()) {
            out.ec = parser.on_eof();
            break;
        }
    }
    out.leftover = buffer.size() + (wire.size() - offset);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const auto shape = static_cast<pop3::reply_shape>(data[0] % 3);
    const std::size_t chunk = 1 + data[1] % 17;
    const std::string_view wire(reinterpret_cast<const char*>(data) + 2, size - 2);
    const outcome whole = run(shape, wire, wire.size() + 1, false);
    for (const outcome& other : {run(shape, wire, chunk, false), run(shape, wire, wire.size() + 1, true),
                                 run(shape, wire, chunk, true)}) {
        if (whole.ec != other.ec) std::abort();
        if (!whole.ec && (whole.trace != other.trace || whole.leftover != other.leftover)) std::abort();
    }
    return 0;
}
