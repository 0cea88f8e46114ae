#ifndef POP3_LIB_SESSION_TCP_STREAMS_HPP
#define POP3_LIB_SESSION_TCP_STREAMS_HPP

// The streams async_connect builds: plain TCP, or TLS over TCP. Not installed.

#include <pop3/detail/any_stream.hpp>
#include <pop3/tls_session_cache.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <string>
#include <vector>

namespace pop3::detail {

using plain_stream = stream_adapter<boost::asio::ip::tcp::socket>;
using tls_stream = stream_adapter<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;

/// TCP_NODELAY: commands and short replies leave at once.
void set_tcp_options(boost::asio::ip::tcp::socket& socket) noexcept;

/// SNI and the name the certificate must carry (a DNS name or an IP
/// address), checked by OpenSSL during the handshake.
error_code prepare_client_tls(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& stream,
                              const std::string& server_name);

/// Checks the peer's public key against the pins (none: no check).
error_code check_pins(SSL* ssl, const std::vector<std::string>& pins);

/// What a TLS session is stored under in a tls_session_cache: the server
/// name verified, the port, the TLS context (by a number of its own) and the
/// pins. Only a connection that would verify the same way may resume it.
std::string tls_session_key(SSL* ssl, const std::string& server_name, const std::string& port,
                            const std::vector<std::string>& pins);
/// Offers the session stored under `key`, if any, for resumption.
void offer_tls_session(SSL* ssl, const tls_session_cache& cache, const std::string& key);

}  // namespace pop3::detail

#endif
