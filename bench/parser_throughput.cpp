// Throughput of the reply parser on one large multi-line reply, fed the way
// a driver feeds it: reads of a fixed size into a buffer, consumed bytes
// dropped, the rest kept. The body's unstuffed size is checked, so a parser
// that drops or invents bytes fails here whatever its speed.
//
//   bench_parser_throughput [MiB=100] [read-size=65536] [runs=5]

#include <pop3/reply_parser.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// A reply of about `target` octets: 76-octet lines, every 40th stuffed.
std::string make_reply(std::size_t target, std::uint64_t& body_octets) {
    std::string wire = "+OK message follows\r\n";
    wire.reserve(target + 128);
    body_octets = 0;
    std::uint32_t x = 12345;
    std::size_t line = 0;
    while (wire.size() < target) {
        std::string text;
        if (line++ % 40 == 0) text = ".";  // a line that starts with a dot, as sent: stuffed
        for (int i = 0; i < 74; ++i) {
            x = x * 1103515245u + 12345u;
            text += static_cast<char>('!' + (x >> 16) % 90);
        }
        body_octets += text.size() + 2;
        if (text[0] == '.') wire += '.';
        wire += text;
        wire += "\r\n";
    }
    wire += ".\r\n";
    return wire;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100;
    const std::size_t read_size = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 65536;
    const int runs = argc > 3 ? std::atoi(argv[3]) : 5;

    std::uint64_t expected_body = 0;
    const std::string wire = make_reply(mib << 20, expected_body);

    std::vector<double> seconds;
    for (int run = 0; run < runs; ++run) {
        pop3::reply_parser parser;
        parser.start(pop3::reply_shape::multi_line);
        std::vector<char> buffer(read_size + 1024);
        std::size_t held = 0, offset = 0;
        std::uint64_t body = 0, checksum = 0;
        const auto t0 = std::chrono::steady_clock::now();
        while (!parser.done() || body == 0) {
            // One "read": top the buffer up from the wire.
            const std::size_t n = std::min(read_size, wire.size() - offset);
            std::memcpy(buffer.data() + held, wire.data() + offset, n);
            offset += n;
            held += n;
            std::size_t used = 0;
            for (;;) {
                pop3::error_code ec;
                const auto r = parser.parse({buffer.data() + used, held - used}, ec);
                if (ec) {
                    std::fprintf(stderr, "parse error: %s\n", ec.message().c_str());
                    return 1;
                }
                if (r.event == pop3::parse_event::body) {
                    body += r.body.size();
                    checksum += static_cast<unsigned char>(r.body.back());
                }
                used += r.consumed;
                if (r.event == pop3::parse_event::need_more || parser.done()) break;
            }
            std::memmove(buffer.data(), buffer.data() + used, held - used);
            held -= used;
            if (parser.done()) break;
            if (n == 0) {
                std::fprintf(stderr, "reply not terminated\n");
                return 1;
            }
        }
        const auto t1 = std::chrono::steady_clock::now();
        if (body != expected_body || checksum == 0) {
            std::fprintf(stderr, "wrong body: %llu octets, expected %llu\n",
                         static_cast<unsigned long long>(body),
                         static_cast<unsigned long long>(expected_body));
            return 1;
        }
        seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double mb = static_cast<double>(wire.size()) / 1e6;
    std::printf("reply: %.1f MB on the wire, %zu-octet reads, %d runs\n", mb, read_size, runs);
    std::printf("parser throughput: best %.0f MB/s, median %.0f MB/s\n", mb / seconds.front(),
                mb / seconds[seconds.size() / 2]);
    return 0;
}
