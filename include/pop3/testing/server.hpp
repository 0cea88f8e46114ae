#ifndef POP3_TESTING_SERVER_HPP
#define POP3_TESTING_SERVER_HPP

// A POP3 server for tests, benches and demos, on loopback, on one thread.
// It serves generated maildrops or Maildir directories, models network
// delay and bandwidth, and injects faults deterministically. Users can test
// their own code against it.
//
// Delay is propagation, not service time: a reply leaves no earlier than
// the arrival of its command plus a round trip (2 x one_way_delay); replies
// keep their order, and the delays of pipelined commands overlap as on a
// real link. The greeting leaves one round trip after the connection is
// accepted.

#include <pop3/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pop3::testing {

/// What generate_messages makes.
struct maildrop_spec {
    std::size_t count = 10;
    std::size_t median_size = 4096;      ///< octets; sizes are log-normal around it
    double size_sigma = 0.6;             ///< spread of the log-normal; 0 gives equal sizes
    std::size_t min_size = 300;
    std::size_t max_size = 2u << 20;
    std::uint64_t seed = 1;
    bool dot_lines = true;               ///< some lines start with "." (stuffed on the wire)
    bool eight_bit = true;               ///< some octets >= 0x80 in bodies
};

/// RFC 5322 messages with CRLF line endings, deterministic from the seed.
std::vector<std::string> generate_messages(const maildrop_spec& spec);

/// Reads a Maildir (cur/ and new/), turning LF line endings into CRLF.
std::vector<std::string> read_maildir(const std::string& directory);

/// A message as POP3 carries it: every bare LF made CRLF, and a final CRLF
/// added when missing.
std::string to_crlf(std::string_view stored);
/// A message as a fetcher stores it: every CRLF made LF.
std::string to_lf(std::string_view crlf);

/// Faults one account's sessions meet. Commands are counted from 1 per
/// connection (the greeting is command 0).
struct fault_plan {
    std::optional<std::uint64_t> drop_after_bytes;   ///< close after writing this many octets
    std::optional<std::uint64_t> stall_at_command;   ///< never answer this command or later ones
    std::optional<std::uint64_t> err_at_command;     ///< answer this command -ERR [SYS/TEMP]
    std::optional<std::uint64_t> garbage_at_command; ///< answer this command with broken framing
    bool one_byte_writes = false;                    ///< send every reply one octet at a time
    bool greeting_err = false;                       ///< greet with -ERR and close
    /// Sent right after the STLS +OK, in the same write (an injection).
    std::string stls_inject;
    /// Answer STLS with +OK, then never start TLS.
    bool stls_silent = false;
    /// SCRAM: send a wrong server signature (a server that cannot prove
    /// it knows the password).
    bool bad_scram_signature = false;
    bool in_use = false;                             ///< refuse logins with -ERR [IN-USE]
    /// Refuse the first `refuse_logins` logins to the account with
    /// "-ERR [refuse_code] ..." (e.g. "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM").
    std::uint64_t refuse_logins = 0;
    std::string refuse_code = "SYS/TEMP";
    /// Drop each connection at a point drawn from this seed (within the
    /// first `random_drop_window` octets written). 0: off.
    std::uint64_t random_drop_seed = 0;
    std::uint64_t random_drop_window = 4096;

    /// Advertise PIPELINING but answer only the first command of each read,
    /// dropping the rest of what arrived with it (a server that reads one
    /// line and discards its buffer).
    bool pipelining_first_only = false;
    /// QUIT after a login: answer "-ERR [SYS/TEMP]" and commit no deletion
    /// (RFC 1939: some deleted messages not removed).
    bool quit_err = false;
    /// QUIT after a login: close the connection without the +OK, after
    /// committing the deletions (after_commit) or without committing them
    /// (before_commit): a reset at the worst moment for a client.
    enum class quit_drop { none, after_commit, before_commit } quit_drop = quit_drop::none;
    /// Close a connection that sends no command for this long, without
    /// committing anything (RFC 1939's autologout timer). 0: never. For an
    /// account's own plan, counted from its login.
    std::chrono::milliseconds autologout{0};
    /// Rewrites a reply before it is queued: given the command line as
    /// received (empty for the greeting) and the bytes the server would
    /// send, which it may change or empty (then nothing is sent). For
    /// listings, framings and lies no sane server produces.
    std::function<void(std::string_view command, std::string& reply)> rewrite;
    /// Answers "-ERR [SYS/TEMP] refused" to every command line (after
    /// login) for which it returns true, without carrying it out: a DELE or
    /// UIDL that fails on the server's side.
    std::function<bool(std::string_view command)> refuse;
};

struct server_options {
    std::string address = "127.0.0.1";
    unsigned short port = 0;  ///< 0: any free port; see server::port()

    std::chrono::microseconds one_way_delay{0};
    std::uint64_t bandwidth = 0;  ///< octets per second each way; 0: unlimited

    enum class tls_mode { none, stls, implicit } tls = tls_mode::none;

    bool pipelining = true;
    bool uidl = true;
    bool top = true;
    bool resp_codes = true;
    bool apop = true;   ///< a msg-id timestamp in the greeting
    bool user = true;
    bool last = true;
    /// SASL mechanisms offered (advertised with CAPA SASL). OAuth ones take
    /// the account's password as the bearer token.
    std::vector<std::string> sasl = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "XOAUTH2",
                                     "OAUTHBEARER"};
    /// TLS identity: the PEM key and certificate chain to serve; empty means
    /// the self-signed one made at start (for localhost and 127.0.0.1).
    std::string tls_key_pem;
    std::string tls_certificate_pem;
    /// PEM of the CA whose client certificates the server accepts for SASL
    /// EXTERNAL (the certificate's common name is the user); empty: none.
    std::string client_ca_pem;
    /// Highest TLS version offered, e.g. TLS1_1_VERSION (0: the library's).
    int tls_max_version = 0;
    std::size_t login_delay = 0;  ///< advertised as LOGIN-DELAY when non-zero
    std::string expire;           ///< advertised as EXPIRE when non-empty

    fault_plan faults;  ///< for accounts without their own plan
};

/// What the server saw, for tests to assert on.
struct server_stats {
    std::uint64_t connections = 0;
    std::uint64_t active = 0;
    std::uint64_t peak_active = 0;
    std::uint64_t commands = 0;
    std::uint64_t logins = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t tls_handshakes = 0;
    std::uint64_t tls_resumed = 0;  ///< handshakes that resumed a session
};

class server {
public:
    server(boost::asio::any_io_executor ex, server_options options = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Adds (or replaces) an account. Its messages are served in order,
    /// numbered from 1; their UIDs are stable hashes of their content.
    void add_account(const std::string& user, const std::string& password,
                     std::vector<std::string> messages, std::optional<fault_plan> faults = {});

    /// Starts listening; returns the error if the address cannot be bound.
    error_code start();
    /// Stops listening and closes every connection.
    void stop();

    unsigned short port() const noexcept;
    const server_options& options() const noexcept;
    server_stats stats() const;

    /// The account's messages now (deletions committed at QUIT are gone).
    std::vector<std::string> messages(const std::string& user) const;
    /// The UIDs the server gives an account's current messages, in order.
    std::vector<std::string> uids(const std::string& user) const;
    /// Contents deleted from the account by committed QUITs, in order.
    std::vector<std::string> deleted(const std::string& user) const;

    /// The server's self-signed certificate (PEM), made at construction, for
    /// "localhost" and 127.0.0.1; and a client context that trusts it.
    const std::string& certificate_pem() const noexcept;
    std::shared_ptr<boost::asio::ssl::context> client_tls_context() const;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace pop3::testing

#endif
