#ifndef POP3_TEST_SUPPORT_FETCH_ALL_HPP
#define POP3_TEST_SUPPORT_FETCH_ALL_HPP

// One pipelined async_fetch of messages 1..count, each body collected into
// a string: what came, each message's outcome, and the fetch's own error.

#include <pop3/session.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace pop3::test {

struct fetched {
    std::vector<std::string> bodies;
    /// Each message's outcome from fetch_callbacks::done; would_block for
    /// one that never came to done.
    std::vector<error_code> outcome;
    error_code ec;  ///< the fetch's: a fatal error, or none

    std::size_t stored() const {
        std::size_t n = 0;
        for (const auto& e : outcome) n += !e;
        return n;
    }
};

inline boost::asio::awaitable<fetched> fetch_all(session& s, std::size_t count) {
    fetched f;
    f.bodies.resize(count);
    f.outcome.assign(count, boost::asio::error::would_block);
    fetch_callbacks cb;
    cb.open = [&f](const message_info& m) {
        body_sink sink;
        sink.write = [&f, n = m.number](std::string_view chunk) {
            f.bodies[n - 1].append(chunk);
            return error_code{};
        };
        return sink;
    };
    cb.done = [&f](const message_info& m, error_code ec, const diagnostics&) { f.outcome[m.number - 1] = ec; };
    std::vector<std::uint64_t> numbers;
    for (std::size_t i = 1; i <= count; ++i) numbers.push_back(i);
    auto [ec] = co_await s.async_fetch(numbers, cb, boost::asio::as_tuple(boost::asio::use_awaitable));
    f.ec = ec;
    co_return f;
}

}  // namespace pop3::test

#endif
