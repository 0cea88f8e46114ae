#ifndef POP3_TEST_DOVECOT_INSTANCE_HPP
#define POP3_TEST_DOVECOT_INSTANCE_HPP

// The Dovecot instance this test program started (main.cpp), and what
// every interoperability test needs around it.

#include "../support/dovecot.hpp"

#include <pop3/session_options.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

namespace pop3::test {

/// Set by main() for the whole run.
dovecot& the_dovecot();

/// A user of its own for each test: tests never share a maildrop.
inline std::string fresh_user(const std::string& stem) {
    static std::atomic<int> counter{0};
    return stem + std::to_string(++counter);
}

/// Messages as a delivery agent stores them (LF line endings), with what
/// the wire makes hard: dot-stuffing, 8-bit octets, a 3 MiB message, tiny
/// ones, one stored with CRLF and one without a final newline.
std::vector<std::string> interop_corpus(std::uint64_t seed = 11, std::size_t generated = 12);

/// Options for a session that verifies Dovecot's certificate against the
/// test CA: STLS on the plain port, or implicit TLS.
inline session_options verified(transport mode = transport::plain) {
    session_options o;
    o.mode = mode;
    o.tls_context = the_dovecot().client_tls_context();
    // Dovecot holds a second session's PASS for up to ~15 s while it waits
    // for the first one's lock: longer than that.
    o.reply_timeout = std::chrono::seconds(40);
    o.connect_timeout = std::chrono::seconds(20);
    return o;
}

inline std::string plain_port() { return std::to_string(the_dovecot().plain_port()); }
inline std::string tls_port() { return std::to_string(the_dovecot().tls_port()); }

}  // namespace pop3::test

#endif
