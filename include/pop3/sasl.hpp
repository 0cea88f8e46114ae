#ifndef POP3_SASL_HPP
#define POP3_SASL_HPP

// SASL for POP3 (RFC 5034), with no I/O: each mechanism turns the server's
// decoded challenges into responses, and the policy below picks the
// mechanism. The session sends and receives; this decides what.

#include <pop3/capabilities.hpp>
#include <pop3/error.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pop3 {

/// Strict base64 (RFC 4648): decode fails on anything but the alphabet and
/// final padding. At most `max` decoded octets.
std::optional<std::string> base64_decode(std::string_view text, std::size_t max = 64 * 1024);
std::string base64_encode(std::string_view bytes);

enum class auth_mechanism {
    automatic,      ///< the strongest both sides have (see choose_mechanism)
    user_pass,      ///< USER and PASS (RFC 1939)
    apop,           ///< APOP (RFC 1939)
    plain,          ///< SASL PLAIN (RFC 4616)
    login,          ///< SASL LOGIN (draft, widely deployed)
    cram_md5,       ///< SASL CRAM-MD5 (RFC 2195)
    scram_sha_1,    ///< SASL SCRAM-SHA-1 (RFC 5802)
    scram_sha_256,  ///< SASL SCRAM-SHA-256 (RFC 7677)
    xoauth2,        ///< SASL XOAUTH2 (Google, Microsoft)
    oauthbearer,    ///< SASL OAUTHBEARER (RFC 7628)
    external,       ///< SASL EXTERNAL: the TLS client certificate (RFC 4422)
};

/// The SASL name ("SCRAM-SHA-256"), or the command ("USER", "APOP").
std::string_view mechanism_name(auth_mechanism m) noexcept;
/// Parses a name as the fetcher's --auth takes it ("scram-sha-256", "user").
std::optional<auth_mechanism> parse_mechanism(std::string_view name) noexcept;
/// True when the mechanism sends the password itself (USER/PASS, PLAIN, LOGIN).
bool sends_cleartext_secret(auth_mechanism m) noexcept;

/// What the client can prove itself with.
struct credentials {
    std::string user{};
    std::string password{};  ///< for password mechanisms
    /// For XOAUTH2 and OAUTHBEARER: called for a fresh token at each login,
    /// so a long-running poller can refresh it. Returns the token, or an
    /// error to stop the login.
    std::function<error_code(std::string& token)> oauth_token{};
    std::string authzid{};  ///< authorize as another identity (PLAIN, SCRAM, EXTERNAL); usually empty
    bool client_certificate = false;  ///< a TLS client certificate is configured (EXTERNAL)
    auth_mechanism mechanism = auth_mechanism::automatic;
};

/// Checks credentials before anything is sent: CR, LF or NUL in the user,
/// password, authzid or token is argument_has_forbidden_char.
error_code check_credentials(const credentials& c) noexcept;

/// What the policy sees of the server and the connection.
struct auth_context {
    const capabilities* caps = nullptr;  ///< the CAPA answer, or nullptr if none
    bool apop_timestamp = false;         ///< the greeting has a msg-id timestamp
    bool tls = false;                    ///< the connection is encrypted
    bool allow_plaintext = false;        ///< the user allows cleartext secrets without TLS
};

/// Picks the mechanism to use:
/// - a mechanism the user named is used if the server offers it, else
///   mechanism_not_offered (never a silent fallback);
/// - automatic takes the strongest both sides have: EXTERNAL (with a client
///   certificate), the OAuth mechanisms (with a token provider), then
///   SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, APOP (only with TLS), PLAIN,
///   LOGIN, USER/PASS;
/// - secrets in cleartext (USER/PASS, PLAIN, LOGIN, and the OAuth tokens)
///   only over TLS unless allow_plaintext: otherwise
///   plaintext_auth_refused, before anything is sent.
/// USER/PASS counts as offered when CAPA lists USER or there was no CAPA.
error_code choose_mechanism(const credentials& c, const auth_context& ctx, auth_mechanism& chosen);

/// One SASL exchange, client side. start() gives the initial response (if
/// the mechanism has one); step() answers each decoded challenge; finish()
/// checks the server's last word when the exchange ends with +OK (SCRAM
/// verifies the server signature there).
class sasl_client {
public:
    virtual ~sasl_client() = default;
    virtual std::string_view name() const noexcept = 0;
    /// The initial response, or nullopt when the mechanism starts with an
    /// empty challenge.
    virtual std::optional<std::string> start() = 0;
    /// The response to a challenge, or an error that aborts the exchange
    /// (the session sends "*").
    virtual error_code step(std::string_view challenge, std::string& response) = 0;
    /// Called on +OK: no error when the mechanism is satisfied with the
    /// server's proof.
    virtual error_code finish() { return {}; }
};

/// The client side of a mechanism. `nonce` is for tests (SCRAM); empty
/// means a fresh random one.
std::unique_ptr<sasl_client> make_sasl_client(auth_mechanism m, const credentials& c, std::string token = {},
                                              std::string nonce = {});

/// SCRAM's client-final proof and server signature, exposed for tests and
/// for the test server.
struct scram_keys {
    std::string salted_password, client_key, stored_key, server_key;
};
scram_keys scram_derive(auth_mechanism m, std::string_view password, std::string_view salt, unsigned iterations);
std::string hmac(auth_mechanism m, std::string_view key, std::string_view data);
std::string hash(auth_mechanism m, std::string_view data);

}  // namespace pop3

#endif
