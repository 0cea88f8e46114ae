// A whole session, greeting to QUIT, driven by fuzzed server bytes over a
// scripted stream: the input is cut into reads of lengths drawn from its
// first two octets, and ends in EOF. Whatever the server sends, every
// operation must complete (the io_context runs dry), nothing may crash or
// leak, a message handed to a sink must not exceed the cap, and after a
// fatal error nothing more may be written.
#include <pop3/session.hpp>
#include <pop3/testing/scripted_stream.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;

constexpr std::uint64_t message_cap = 1 << 16;

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    std::uint32_t state = static_cast<std::uint32_t>(data[0]) << 8 | data[1];
    const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

    asio::io_context ioc;
    pop3::testing::scripted_stream stream(ioc.get_executor());
    auto remote = stream.remote();
    for (std::size_t at = 0; at < input.size();) {
        state = state * 1103515245u + 12345u;
        const std::size_t n = std::min<std::size_t>(input.size() - at, 1 + (state >> 16) % 512);
        remote.push(std::string(input.substr(at, n)));
        at += n;
    }
    remote.push_error(asio::error::eof);

    pop3::session_options o;
    o.tls = pop3::tls_policy::none;
    o.allow_plaintext_auth = true;
    o.max_message_size = message_cap;
    o.reply_timeout = std::chrono::seconds(1);  // a safety net: the script always ends in EOF
    o.pipeline.depth = (data[0] & 1) ? 0 : 1;  // automatic (pipelined after CAPA) or lock-step
    auto s = pop3::session::over(std::move(stream), o);

    std::size_t written_at_failure = std::string::npos;
    auto note = [&](pop3::error_code ec) {
        if (ec && pop3::is_fatal(ec) && written_at_failure == std::string::npos)
            written_at_failure = remote.written().size();
    };
    bool quit_done = false;
    s.async_greeting([&](pop3::error_code ec) {
        note(ec);
        s.async_capa([&](pop3::error_code ec, pop3::capabilities) { note(ec); });
        s.async_login("user", "secret", [&](pop3::error_code ec) { note(ec); });
        s.async_stat([&](pop3::error_code ec, pop3::stat_info) { note(ec); });
        s.async_list_uidl([&](pop3::error_code ec, std::vector<pop3::message_info> listing) {
            note(ec);
            std::vector<std::uint64_t> numbers;
            for (const auto& m : listing) {
                if (numbers.size() == 16) break;
                numbers.push_back(m.number);
            }
            auto octets = std::make_shared<std::uint64_t>(0);
            pop3::fetch_callbacks cb;
            cb.open = [octets](const pop3::message_info&) {
                *octets = 0;
                pop3::body_sink sink;
                sink.write = [octets](std::string_view chunk) {
                    *octets += chunk.size();
                    check(*octets <= message_cap);
                    return pop3::error_code{};
                };
                return sink;
            };
            cb.done = [&](const pop3::message_info&, pop3::error_code e, const pop3::diagnostics&) { note(e); };
            s.async_fetch(numbers, std::move(cb), [&, numbers](pop3::error_code ec) {
                note(ec);
                s.async_delete(numbers, [&](pop3::error_code ec, std::vector<pop3::error_code>) {
                    note(ec);
                    s.async_top(1, 2, [&](pop3::error_code ec, std::string) { note(ec); });
                    s.async_quit([&](pop3::error_code ec) {
                        note(ec);
                        quit_done = true;
                    });
                });
            });
        });
    });
    ioc.run();  // returns only when every operation has completed
    check(quit_done || s.state() == pop3::session_state::failed || written_at_failure != std::string::npos);
    if (written_at_failure != std::string::npos) check(remote.written().size() == written_at_failure);
    return 0;
}
