#ifndef POP3_DETAIL_ANY_STREAM_HPP
#define POP3_DETAIL_ANY_STREAM_HPP

// The session engine reads and writes through this interface, so that it is
// compiled once in lib/ whatever stream the user brings.

#include <pop3/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/stream_traits.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>

namespace pop3::detail {

using io_handler = boost::asio::any_completion_handler<void(error_code, std::size_t)>;

class any_stream {
public:
    virtual ~any_stream() = default;
    virtual boost::asio::any_io_executor get_executor() = 0;
    virtual void async_read_some(boost::asio::mutable_buffer buffer, io_handler handler) = 0;
    virtual void async_write_some(boost::asio::const_buffer buffer, io_handler handler) = 0;
    /// Closes the lowest layer: pending operations complete with an error.
    virtual void close() noexcept = 0;
    /// True when bytes cross the network encrypted (TLS).
    virtual bool encrypted() const noexcept = 0;
    /// Called once a read completed: TCP streams re-arm TCP_QUICKACK here,
    /// so that a server's short replies never wait on a delayed ACK.
    virtual void after_read() noexcept {}
    /// Wake reads only once this many octets are in the TCP socket's
    /// receive queue (1: any). False when the lowest layer is no TCP
    /// socket, or the system cannot.
    virtual bool set_read_low_water(std::size_t) noexcept { return false; }
    /// Right after a read completed: copies into `buffer` what the stream
    /// can give at once, without I/O and without waiting, and returns how
    /// many octets. A TLS stream's read completes once per record; the
    /// records the same socket read brought are taken here in one pass. A
    /// record that fails (a bad MAC, an alert) ends the pass and sets `ec`:
    /// the octets before it are good, and the error is the stream's next
    /// read's. Streams without such a store return 0.
    virtual std::size_t read_buffered(boost::asio::mutable_buffer, error_code& ec) noexcept {
        ec = {};
        return 0;
    }
};

/// Sets TCP_QUICKACK on a TCP socket (Linux; elsewhere nothing).
void tcp_quickack(int native_handle) noexcept;
/// Sets SO_RCVLOWAT on a TCP socket (Linux; elsewhere returns false).
bool tcp_low_water(int native_handle, std::size_t octets) noexcept;

/// The TLS half of read_buffered: SSL_read on the records already handed
/// to OpenSSL, for TLS 1.3 connections past their handshake only (where a
/// read never has to send anything before it can go on: no renegotiation).
std::size_t tls_read_buffered(SSL* ssl, void* data, std::size_t size, error_code& ec) noexcept;

template <class T>
struct is_tls_stream : std::false_type {};
template <class Next>
struct is_tls_stream<boost::asio::ssl::stream<Next>> : std::true_type {};

/// Wraps any Asio AsyncReadStream + AsyncWriteStream.
template <class Stream>
class stream_adapter final : public any_stream {
public:
    template <class... Args>
    explicit stream_adapter(Args&&... args) : stream_(std::forward<Args>(args)...) {}

    boost::asio::any_io_executor get_executor() override { return stream_.get_executor(); }
    // The engine's handlers run on the stream's executor. Binding it also
    // gives streams that post their completions (beast::tcp_stream) an
    // executor they can require blocking.never of.
    void async_read_some(boost::asio::mutable_buffer buffer, io_handler handler) override {
        stream_.async_read_some(buffer, boost::asio::bind_executor(stream_.get_executor(), std::move(handler)));
    }
    void async_write_some(boost::asio::const_buffer buffer, io_handler handler) override {
        stream_.async_write_some(buffer, boost::asio::bind_executor(stream_.get_executor(), std::move(handler)));
    }
    void close() noexcept override {
        auto& lowest = boost::beast::get_lowest_layer(stream_);
        error_code ec;
        if constexpr (requires { lowest.close(ec); })
            lowest.close(ec);
        else
            lowest.close();
    }
    bool encrypted() const noexcept override { return is_tls_stream<Stream>::value; }
    std::size_t read_buffered(boost::asio::mutable_buffer buffer, error_code& ec) noexcept override {
        ec = {};
        if constexpr (is_tls_stream<Stream>::value)
            return tls_read_buffered(stream_.native_handle(), buffer.data(), buffer.size(), ec);
        else
            return 0;
    }
    bool set_read_low_water(std::size_t octets) noexcept override {
        const int fd = tcp_native_handle();
        return fd >= 0 && tcp_low_water(fd, octets);
    }
    void after_read() noexcept override {
        if (const int fd = tcp_native_handle(); fd >= 0) tcp_quickack(fd);
    }

    Stream& stream() noexcept { return stream_; }

private:
    // The TCP socket the stream runs on, or -1 when its lowest layer is
    // no TCP socket.
    int tcp_native_handle() noexcept {
        auto& lowest = boost::beast::get_lowest_layer(stream_);
        using lowest_type = std::decay_t<decltype(lowest)>;
        if constexpr (requires { typename lowest_type::protocol_type; lowest.native_handle(); }) {
            if constexpr (std::is_same_v<typename lowest_type::protocol_type, boost::asio::ip::tcp>)
                return static_cast<int>(lowest.native_handle());
            else
                return -1;
        } else if constexpr (requires { lowest.socket().native_handle(); }) {
            return static_cast<int>(lowest.socket().native_handle());  // beast::tcp_stream
        } else {
            return -1;
        }
    }

    Stream stream_;
};

}  // namespace pop3::detail

#endif
