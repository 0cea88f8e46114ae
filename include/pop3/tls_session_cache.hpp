#ifndef POP3_TLS_SESSION_CACHE_HPP
#define POP3_TLS_SESSION_CACHE_HPP

// TLS sessions kept for resumption (RFC 8446 tickets, RFC 5077 for TLS
// 1.2), so that a client connecting to the same server again skips the
// certificate chain and the server's signature: the part of a handshake
// that costs both sides CPU, which a poller of many maildrops on one server
// pays once per maildrop.

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>

namespace pop3 {

/// A bounded store of TLS sessions by server. Give one to the sessions that
/// should share it (session_options::tls_session_cache; the poller shares
/// one among all its sessions unless told otherwise). A session is offered
/// again only to a connection with the same server name, port, TLS context
/// and pins as the one that verified it, so resumption never stands in for
/// a verification that would not have happened. Thread-safe.
class tls_session_cache {
public:
    /// Keeps the sessions of at most `capacity` servers (the least recently
    /// stored go first).
    explicit tls_session_cache(std::size_t capacity = 4096);
    ~tls_session_cache();
    tls_session_cache(const tls_session_cache&) = delete;
    tls_session_cache& operator=(const tls_session_cache&) = delete;

    /// A copy of the session stored for `key`, which the caller owns
    /// (SSL_SESSION_free), or nullptr. Used by sessions.
    SSL_SESSION* find(const std::string& key) const;
    /// Stores a copy of `s` for `key`, replacing the one there. Used by
    /// sessions; a session that is not resumable is not stored.
    void store(const std::string& key, SSL_SESSION* s);
    /// Forgets the session for `key`. Used by sessions when a handshake
    /// with that server fails verification: an older session must not let
    /// a later connection skip the check that just failed.
    void erase(const std::string& key);

    std::size_t size() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pop3

#endif
