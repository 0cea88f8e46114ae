// Hardening: a message of more than 4 GiB (sizes past 32 bits) streamed in
// constant memory. The server is a stream that makes its bytes as the
// session reads them, so nothing of that size exists anywhere at once.

#include <pop3/session.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
using namespace pop3;

namespace {

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer the same property at a sixteenth of the size: the
// full size would take minutes there. The normal build runs the full size.
constexpr std::uint64_t target = (std::uint64_t(1) << 28) + 12345;
#else
constexpr std::uint64_t target = (std::uint64_t(4) << 30) + 12345;  // past 2^32
#endif

// One period of the body: 1,000 lines of 78 octets, the first of them
// starting with a dot (stuffed on the wire, so the parser cuts a chunk there).
std::string make_period() {
    std::string p;
    for (int i = 0; i < 1000; ++i) {
        std::string line(78, static_cast<char>('a' + i % 26));
        if (i == 0) line[0] = '.';
        if (line[0] == '.') p += '.';
        p += line + "\r\n";
    }
    return p;
}

// A POP3 server as a stream: it greets, answers USER, PASS and QUIT, and
// answers RETR with `periods` copies of the period, made while being read.
class generated_stream {
public:
    using executor_type = asio::any_io_executor;

    struct state {
        asio::any_io_executor ex;
        std::string period;
        std::uint64_t periods = 0;
        std::string pending;            // short replies waiting to be read
        std::uint64_t body_left = 0;    // octets of the RETR body still to make
        std::uint64_t body_offset = 0;  // position in the period
        bool terminator = false;
        std::string line;               // the command being written
    };

    generated_stream(asio::any_io_executor ex, std::uint64_t periods) : s_(std::make_shared<state>()) {
        s_->ex = std::move(ex);
        s_->period = make_period();
        s_->periods = periods;
        s_->pending = "+OK generated\r\n";
    }

    executor_type get_executor() const { return s_->ex; }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [s = s_](auto handler, asio::mutable_buffer b) {
                char* out = static_cast<char*>(b.data());
                std::size_t n = 0;
                if (!s->pending.empty()) {
                    n = std::min(b.size(), s->pending.size());
                    std::memcpy(out, s->pending.data(), n);
                    s->pending.erase(0, n);
                } else {
                    while (n < b.size() && s->body_left != 0) {
                        const std::size_t take = static_cast<std::size_t>(
                            std::min<std::uint64_t>({b.size() - n, s->body_left, s->period.size() - s->body_offset}));
                        std::memcpy(out + n, s->period.data() + s->body_offset, take);
                        n += take;
                        s->body_left -= take;
                        s->body_offset = (s->body_offset + take) % s->period.size();
                    }
                    if (s->body_left == 0 && s->terminator) {
                        s->terminator = false;
                        s->pending = ".\r\n";
                    }
                }
                asio::post(s->ex, asio::append(std::move(handler), error_code{}, n));
            },
            token, *asio::buffer_sequence_begin(buffers));
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [s = s_](auto handler, asio::const_buffer b) {
                const char* in = static_cast<const char*>(b.data());
                for (std::size_t i = 0; i < b.size(); ++i) {
                    if (in[i] != '\n') {
                        s->line += in[i];
                        continue;
                    }
                    if (s->line.rfind("RETR", 0) == 0) {
                        s->pending += "+OK\r\n";
                        s->body_left = s->periods * s->period.size();
                        s->body_offset = 0;
                        s->terminator = true;
                    } else {
                        s->pending += s->line.rfind("QUIT", 0) == 0 ? "+OK bye\r\n" : "+OK\r\n";
                    }
                    s->line.clear();
                }
                asio::post(s->ex, asio::append(std::move(handler), error_code{}, b.size()));
            },
            token, *asio::buffer_sequence_begin(buffers));
    }

    void close() {}

private:
    std::shared_ptr<state> s_;
};

long peak_rss_kib() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

}  // namespace

TEST_CASE("a message past 4 GiB streams in constant memory, every octet counted") {
    const std::string period = make_period();
    const std::uint64_t unstuffed_period = period.size() - 1;  // one stuffed dot per period
    const std::uint64_t periods = target / unstuffed_period + 1;
    const std::uint64_t expected = periods * unstuffed_period;
    REQUIRE(expected > target);

    asio::io_context ioc;
    session_options o;
    o.tls = tls_policy::none;
    o.allow_plaintext_auth = true;
    o.max_message_size = UINT64_MAX;  // the user's decision: no cap
    o.pipeline.depth = 1;
    auto s = session::over(generated_stream(ioc.get_executor(), periods), o);

    const long rss_before = peak_rss_kib();
    std::uint64_t octets = 0, dots = 0, bad = 0, chunks = 0;
    error_code retr_ec = error::timeout, quit_ec = error::timeout;
    std::uint64_t reported = 0;
    body_sink sink;
    sink.write = [&](std::string_view chunk) {
        ++chunks;
        // Every octet is a letter, a dot at a line start, CR or LF.
        for (std::size_t i = 0; i < chunk.size(); i += 4093) {
            const char c = chunk[i];
            bad += !((c >= 'a' && c <= 'z') || c == '.' || c == '\r' || c == '\n');
        }
        dots += static_cast<std::uint64_t>(std::count(chunk.begin(), chunk.end(), '.'));
        octets += chunk.size();
        return error_code{};
    };
    s.async_greeting([&](error_code ec) {
        REQUIRE(!ec);
        s.async_login("u", "p", [](error_code e) { REQUIRE(!e); });
        s.async_retr(1, std::move(sink), [&](error_code ec, std::uint64_t n) {
            retr_ec = ec;
            reported = n;
            s.async_quit([&](error_code e) { quit_ec = e; });
        });
    });
    ioc.run();
    const long rss_growth_kib = peak_rss_kib() - rss_before;

    CHECK(!retr_ec);
    CHECK(!quit_ec);
    CHECK(octets == expected);
    CHECK(reported == expected);  // the count is 64-bit all the way
    CHECK(dots == periods);       // each stuffed dot arrived once, unstuffed
    CHECK(bad == 0);
    MESSAGE("streamed " << octets << " octets in " << chunks << " chunks; peak RSS grew by " << rss_growth_kib
                        << " KiB");
    CHECK(rss_growth_kib < 64 * 1024);  // constant memory: nowhere near the message's size
}
