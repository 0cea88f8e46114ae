#ifndef POP3_TEST_SUPPORT_RELAY_HPP
#define POP3_TEST_SUPPORT_RELAY_HPP

// A loopback TCP relay in front of a real server, on a thread of its own:
// it forwards bytes both ways, optionally after a fixed delay each way (the
// kernel here has no netem), and counts what the client sent and in how
// many reads. A pipelining client sends many commands in one write; a
// lock-step one, one per write: the counts tell them apart, TLS or not.

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

namespace pop3::test {

class relay {
public:
    /// Listens on 127.0.0.1 (an ephemeral port) and forwards each
    /// connection to 127.0.0.1:target_port, holding every chunk for `delay`
    /// in each direction.
    explicit relay(unsigned short target_port, std::chrono::microseconds delay = {})
        : target_port_(target_port), delay_(delay) {
        namespace ip = boost::asio::ip;
        acceptor_.open(ip::tcp::v4());
        acceptor_.set_option(ip::tcp::acceptor::reuse_address(true));
        acceptor_.bind({ip::address_v4::loopback(), 0});
        acceptor_.listen();
        boost::asio::co_spawn(ioc_, accept_loop(), boost::asio::detached);
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~relay() {
        boost::asio::post(ioc_, [this] {
            boost::system::error_code ignored;
            acceptor_.close(ignored);
            for (auto& weak : sockets_)
                if (auto s = weak.lock()) s->close(ignored);
        });
        guard_.reset();
        thread_.join();
    }
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    /// Reads that brought client bytes, and the bytes, since the last reset.
    std::uint64_t client_reads() const { return client_reads_; }
    std::uint64_t client_bytes() const { return client_bytes_; }
    std::uint64_t connections() const { return connections_; }
    void reset_counts() {
        client_reads_ = 0;
        client_bytes_ = 0;
    }
    /// The part of a TLS record (RFC 8446 section 5.1) that damage_server_tls
    /// hits: a ciphertext octet, or the high octet of the record's length.
    enum class tls_part { payload, length };
    /// From now on, flips one bit of what each server sends to its client (a
    /// link that damages data: TLS must catch it): in the first octet of the
    /// chosen part of a record at or after this offset of the connection.
    /// The relay follows the record framing from the first octet on.
    void damage_server_tls(std::uint64_t offset, tls_part part) {
        damage_part_ = part;
        damage_at_ = offset;
    }

private:
    using tcp = boost::asio::ip::tcp;
    template <class T>
    using awaitable = boost::asio::awaitable<T>;

    awaitable<void> accept_loop() {
        for (;;) {
            auto client = std::make_shared<tcp::socket>(ioc_);
            boost::system::error_code ec;
            co_await acceptor_.async_accept(*client, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (ec) co_return;
            ++connections_;
            auto server = std::make_shared<tcp::socket>(ioc_);
            co_await server->async_connect({boost::asio::ip::address_v4::loopback(), target_port_},
                                           boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (ec) continue;
            client->set_option(tcp::no_delay(true));
            server->set_option(tcp::no_delay(true));
            sockets_.push_back(client);
            sockets_.push_back(server);
            boost::asio::co_spawn(ioc_, pump(client, server, true), boost::asio::detached);
            boost::asio::co_spawn(ioc_, pump(server, client, false), boost::asio::detached);
        }
    }

    // Reads from one side; each chunk is written to the other side once its
    // delay has passed, in order, by a writer of its own (so reading goes
    // on meanwhile, as on a real link).
    struct chunk {
        std::vector<char> bytes;
        std::chrono::steady_clock::time_point due;
    };
    struct line {
        std::deque<chunk> queue;
        boost::asio::steady_timer wake;
        bool closed = false;
        explicit line(boost::asio::io_context& ioc) : wake(ioc, std::chrono::steady_clock::time_point::max()) {}
    };

    // Follows the TLS record framing of one direction, octet by octet, and
    // damages the first octet of the wanted part at or after the offset
    // asked for (once a connection).
    struct record_framing {
        unsigned char header[5]{};
        std::size_t header_have = 0;
        std::size_t body_left = 0;
        bool damaged = false;

        void pass(char* p, std::size_t n, std::uint64_t offset, std::uint64_t at, tls_part part) {
            for (std::size_t i = 0; i < n; ++i) {
                const bool in_body = body_left > 0;
                const bool hit = !damaged && offset + i >= at &&
                                 (part == tls_part::payload ? in_body : !in_body && header_have == 3);
                const auto octet = static_cast<unsigned char>(p[i]);  // as the server sent it
                if (hit) {
                    p[i] = static_cast<char>(octet ^ 0x40);
                    damaged = true;
                }
                if (in_body) {
                    --body_left;
                    continue;
                }
                header[header_have++] = octet;
                if (header_have == 5) {
                    body_left = std::size_t{header[3]} << 8 | header[4];
                    header_have = 0;
                }
            }
        }
    };

    awaitable<void> pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to, bool from_client) {
        auto l = std::make_shared<line>(ioc_);
        boost::asio::co_spawn(ioc_, writer(l, to), boost::asio::detached);
        std::vector<char> buf(64 * 1024);
        std::uint64_t offset = 0;
        record_framing framing;
        for (;;) {
            boost::system::error_code ec;
            const std::size_t n = co_await from->async_read_some(
                boost::asio::buffer(buf), boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (ec) break;
            if (from_client) {
                ++client_reads_;
                client_bytes_ += n;
            } else {
                const std::uint64_t at = damage_at_;  // set after the part
                framing.pass(buf.data(), n, offset, at, damage_part_);
            }
            offset += n;
            l->queue.push_back({std::vector<char>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)),
                                std::chrono::steady_clock::now() + delay_});
            l->wake.cancel();
        }
        l->closed = true;
        l->wake.cancel();
    }

    awaitable<void> writer(std::shared_ptr<line> l, std::shared_ptr<tcp::socket> to) {
        for (;;) {
            if (l->queue.empty()) {
                if (l->closed) break;
                l->wake.expires_at(std::chrono::steady_clock::time_point::max());
                boost::system::error_code ec;
                co_await l->wake.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
                continue;
            }
            chunk& c = l->queue.front();
            if (c.due > std::chrono::steady_clock::now()) {
                boost::asio::steady_timer t(ioc_, c.due);
                boost::system::error_code ec;
                co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            }
            boost::system::error_code ec;
            co_await boost::asio::async_write(*to, boost::asio::buffer(c.bytes),
                                              boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (ec) break;
            l->queue.pop_front();
        }
        boost::system::error_code ignored;
        to->shutdown(tcp::socket::shutdown_send, ignored);
    }

    boost::asio::io_context ioc_{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{ioc_.get_executor()};
    tcp::acceptor acceptor_{ioc_};
    unsigned short target_port_;
    std::chrono::microseconds delay_;
    std::vector<std::weak_ptr<tcp::socket>> sockets_;
    std::atomic<std::uint64_t> client_reads_{0};
    std::atomic<std::uint64_t> client_bytes_{0};
    std::atomic<std::uint64_t> connections_{0};
    std::atomic<std::uint64_t> damage_at_{~std::uint64_t{0}};
    std::atomic<tls_part> damage_part_{tls_part::payload};
    std::thread thread_;
};

}  // namespace pop3::test

#endif
