#ifndef POP3_TEST_SUPPORT_RUN_HPP
#define POP3_TEST_SUPPORT_RUN_HPP

// Runs a coroutine test on an io_context with a hard time bound, so a hang
// fails the test instead of the suite.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>

namespace pop3::test {

template <class MakeAwaitable>
void run(boost::asio::io_context& ioc, MakeAwaitable make, std::chrono::seconds limit = std::chrono::seconds(30)) {
    // A context that ran out of work before (an earlier run() on it) is
    // stopped until restarted, as Asio has it.
    if (ioc.stopped()) ioc.restart();
    bool done = false;
    std::exception_ptr failure;
    boost::asio::co_spawn(ioc, make(), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(std::chrono::milliseconds(50));
    REQUIRE_MESSAGE(done, "the test coroutine did not finish in time");
    if (failure) std::rethrow_exception(failure);
}

}  // namespace pop3::test

#endif
