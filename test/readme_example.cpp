// The README's coroutine example, compiled (not run: it needs a real server)
// so the README cannot drift from the API.

#include <pop3/session.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>

namespace asio = boost::asio;

namespace readme {

void store(const std::string& uid, const std::string& text);

asio::awaitable<void> fetch(std::string host) {
    pop3::session_options options;
    options.mode = pop3::transport::implicit_tls;  // port 995, certificate verified
    pop3::session s(co_await asio::this_coro::executor, options);
    co_await s.async_connect(host, "995", asio::use_awaitable);
    co_await s.async_capa(asio::use_awaitable);    // learns PIPELINING
    co_await s.async_authenticate({.user = "user", .password = "pw"}, asio::use_awaitable);
    for (const auto& m : co_await s.async_list_uidl(asio::use_awaitable)) {
        std::string text = co_await s.async_retr(m.number, asio::use_awaitable);
        store(m.uid, text);                        // your code
        co_await s.async_dele(m.number, asio::use_awaitable);
    }
    co_await s.async_quit(asio::use_awaitable);    // deletions happen here
}

}  // namespace readme
