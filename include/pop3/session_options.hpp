#ifndef POP3_SESSION_OPTIONS_HPP
#define POP3_SESSION_OPTIONS_HPP

#include <pop3/command.hpp>
#include <pop3/limits.hpp>
#include <pop3/pipeline.hpp>
#include <pop3/tls_session_cache.hpp>

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pop3 {

/// How async_connect reaches the server.
enum class transport {
    plain,         ///< TCP (port 110); STLS can upgrade it later
    implicit_tls,  ///< TLS from the first byte (pop3s, port 995)
};

/// Whether a plain connection is upgraded with STLS (RFC 2595) during
/// async_connect.
enum class tls_policy {
    required,       ///< STLS or fail (error::tls_required) before any credential is sent
    opportunistic,  ///< STLS when offered; otherwise carry on in plaintext
    none,           ///< never STLS (loopback, or a tunnel the user trusts)
};

struct session_options {
    transport mode = transport::plain;
    /// For transport::plain: STLS during async_connect. The default refuses
    /// to go on without TLS.
    tls_policy tls = tls_policy::required;
    /// The TLS context for implicit TLS (and STLS). Share one between
    /// sessions: building one loads the trust store. When null, a session
    /// that needs TLS makes one with make_tls_context({}).
    std::shared_ptr<boost::asio::ssl::context> tls_context;
    /// The name checked against the certificate and sent as SNI; defaults
    /// to the host given to async_connect.
    std::string tls_server_name;

    /// SHA-256 pins of the server's public key (base64 of the hash of its
    /// SubjectPublicKeyInfo, as public_key_pin() computes): when set, the
    /// handshake must present one of them (error::certificate_pin_mismatch),
    /// in addition to normal verification.
    std::vector<std::string> tls_pins;
    /// Where TLS sessions are kept for resumption: set, a connection to a
    /// server this cache has a session of (same name, port, context and
    /// pins) resumes it, and a new session is stored once the server sends
    /// one. Null (the default for a lone session): every handshake is full.
    /// The poller gives all its sessions one.
    std::shared_ptr<pop3::tls_session_cache> tls_session_cache;
    /// How long the TLS handshake after STLS may take.
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds(30)};

    /// Send a SASL mechanism's initial response with AUTH when it fits the
    /// line (RFC 5034). Off: always wait for the server's empty "+ " first,
    /// the two-step form some servers (Microsoft's XOAUTH2) require.
    bool sasl_initial_response = true;

    /// Send passwords (USER/PASS) over a connection without TLS. Off by
    /// default: an explicit decision of the user, never a fallback.
    bool allow_plaintext_auth = false;

    parser_limits limits;
    encode_options encoding;
    pipeline_options pipeline;

    /// Resolve, TCP connect, TLS handshake and greeting together.
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
    /// How long the server may stay silent while a reply is expected (an
    /// idle timeout: a long message that keeps arriving does not hit it).
    std::chrono::milliseconds reply_timeout{std::chrono::seconds(60)};
    /// A deadline for the whole session from async_connect; 0 means none.
    std::chrono::milliseconds session_timeout{0};
    /// A total deadline for each reply, counted from when it becomes the
    /// next one expected (its command is sent, or the reply before it
    /// ended): a server that trickles a byte now and then never trips the
    /// idle timeout, but trips this. 0 means none. Time a slow local sink
    /// holds the session up does not count against the server.
    std::chrono::milliseconds command_timeout{0};
    /// With command_timeout: the reply's deadline grows by its expected
    /// size (from LIST) divided by this many octets per second, so a large
    /// message gets the time it needs at this rate. 0: sizes add nothing.
    std::uint64_t min_reply_rate = 0;

    /// The largest message accepted, streamed or into a string: a larger one
    /// fails with message_too_large (the rest of it is read and dropped, the
    /// session goes on), whatever LIST said of its size. Streaming holds no
    /// more than a read buffer whatever the size, so raise it freely for
    /// large mail (a 4 GiB message streams in constant memory).
    std::uint64_t max_message_size = 64u << 20;
    /// A RETR or TOP body that begins with a POP3 status line ("+OK" or
    /// "-ERR" and a space or line end) means the server answered a command
    /// twice: every later reply would be matched to the wrong command. The
    /// session then fails with reply_out_of_step before it sends anything
    /// more (no DELE can follow). Turn off only for a maildrop known to hold
    /// such messages.
    bool check_message_start = true;
    /// Linux: re-arm TCP_QUICKACK after every read that leaves a reply still
    /// due, so the server's short replies are acknowledged at once. Without
    /// it, a server that holds a short reply until its previous one is ACKed
    /// (Nagle) waits for the client's delayed ACK: about 40 ms per login
    /// when USER and PASS are pipelined. Costs one setsockopt per such read.
    bool tcp_quickack = true;
    /// Octets asked for per read while replies are expected. The buffer is
    /// released when the session is idle.
    std::size_t read_size = 32 * 1024;
    /// Linux, TCP: while at least this many octets more are surely due
    /// (the LIST sizes of messages whose RETR is sent, less what has come),
    /// the session asks the kernel to wake it only once this many have
    /// arrived (SO_RCVLOWAT), not for every segment: a bulk fetch wakes the
    /// client a fraction as often. Closer to the end it wakes on any octet.
    /// Should a server send less than its LIST said, so that the session
    /// waits with octets unread, it falls back to any octet after 10 ms
    /// without progress and keeps to that for the rest of the session.
    /// 0 turns it off. Above 64 KiB the kernel enlarges the socket's receive
    /// buffer and clamps its window to the value.
    std::size_t read_low_water = 64 * 1024;
};

struct tls_options {
    std::string ca_file;  ///< PEM bundle to trust instead of the system store
    std::string ca_dir;   ///< hashed CA directory to trust instead of the system store
    /// Accept any certificate and any host name. Only for tests against a
    /// server you started yourself.
    bool insecure_skip_verification = false;
};

/// The pin of a certificate's public key (for session_options::tls_pins),
/// from its PEM; empty when the PEM does not parse.
std::string public_key_pin(const std::string& certificate_pem);

/// A client TLS context: TLS 1.2 at least, peer verification on, the system
/// trust store unless a CA file or directory is given.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_options& options);

}  // namespace pop3

#endif
