// Example 3: stream a huge message to disk in bounded memory.
//
// async_retr with a body_sink hands the message over chunk by chunk as it
// arrives (dot-stuffing undone). With `async_write`, the session reads
// nothing more until the chunk is stored: a slow disk slows the socket down
// instead of filling memory. Here the chunks go to a file through a plain
// write(2); a real program would hand them to a thread or an async file.

#include <pop3/session.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace asio = boost::asio;

asio::awaitable<void> save(std::string port, std::string path) {
    pop3::session_options options;
    options.allow_plaintext_auth = true;  // the test server speaks plain TCP on loopback
    options.tls = pop3::tls_policy::none;
    auto ex = co_await asio::this_coro::executor;
    pop3::session s(ex, options);
    co_await s.async_connect("127.0.0.1", port, asio::use_awaitable);
    co_await s.async_capa(asio::use_awaitable);
    co_await s.async_login("alice", "wonderland", asio::use_awaitable);

    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + path);
    std::size_t chunks = 0, largest = 0;
    pop3::body_sink sink;
    sink.async_write = [&, ex](std::string_view chunk, asio::any_completion_handler<void(pop3::error_code)> done) {
        ++chunks;
        largest = std::max(largest, chunk.size());
        pop3::error_code ec;
        for (std::size_t off = 0; off < chunk.size();) {
            const ssize_t n = ::write(fd, chunk.data() + off, chunk.size() - off);
            if (n <= 0) {
                ec = pop3::error_code(errno, boost::system::system_category());
                break;
            }
            off += static_cast<std::size_t>(n);
        }
        // Completion is posted, never called inline (as a real async sink would).
        asio::post(ex, [done = std::move(done), ec]() mutable { std::move(done)(ec); });
    };
    const std::uint64_t octets = co_await s.async_retr(1, sink, asio::use_awaitable);
    ::fsync(fd);
    ::close(fd);
    std::printf("message 1: %llu octets in %zu chunks, the largest %zu octets\n",
                static_cast<unsigned long long>(octets), chunks, largest);
    co_await s.async_quit(asio::use_awaitable);
}

int main() {
    asio::io_context ioc;
    pop3::testing::server server(ioc.get_executor());
    pop3::testing::maildrop_spec spec;  // one message of 32 MiB
    spec.count = 1;
    spec.median_size = spec.min_size = spec.max_size = 32u << 20;
    spec.size_sigma = 0;
    const auto mail = pop3::testing::generate_messages(spec);
    server.add_account("alice", "wonderland", mail);
    if (auto ec = server.start()) {
        std::fprintf(stderr, "cannot start the test server: %s\n", ec.message().c_str());
        return 1;
    }
    const char* tmp = std::getenv("TMPDIR");
    const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/pop3-example-03.eml";
    int status = 1;
    asio::co_spawn(ioc, save(std::to_string(server.port()), path), [&](std::exception_ptr e) {
        status = 0;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::fprintf(stderr, "error: %s\n", ex.what());
                status = 1;
            }
        }
        server.stop();
    });
    ioc.run();
    std::ifstream in(path, std::ios::binary);
    std::ostringstream stored;
    stored << in.rdbuf();
    ::unlink(path.c_str());
    const bool same = stored.str() == mail[0];
    std::printf("the file is %s the server's message\n", same ? "byte for byte" : "NOT");
    return status == 0 && same ? 0 : 1;
}
