#ifndef POP3_TEST_SUPPORT_DOVECOT_HPP
#define POP3_TEST_SUPPORT_DOVECOT_HPP

// A private Dovecot instance on loopback, for interoperability tests and
// the bench: its own configuration, state and log in a temporary
// directory (never the system's), passwd-file users with plaintext
// secrets (so that every SASL mechanism and APOP work), Maildir storage,
// POP3 with STLS on one port and implicit TLS on another, and a server
// certificate from a test CA made at start.
//
// The instance is one `dovecot -F` master process started with fork/exec;
// it is stopped by its PID in the destructor, and, should the test program
// die first, by the kernel (PR_SET_PDEATHSIG). Login and pop3 processes are
// reused between connections, so a login costs about a millisecond.

#include <pop3/testing/server.hpp>  // to_crlf, to_lf, generate_messages

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace pop3::test {

class dovecot {
public:
    /// Where Dovecot is: $POP3_DOVECOT, /usr/sbin/dovecot, or the PATH;
    /// empty when it is not installed.
    static std::string find_binary();
    /// What `dovecot --version` prints, e.g. "2.3.19.1 (9b53102964)".
    static std::string version();

    struct options {
        /// pop3 processes at most: sessions at once (one process each).
        unsigned pop3_process_limit = 512;
    };

    /// Starts an instance and waits until it greets on both ports. On
    /// failure returns null and says why (with the end of Dovecot's log).
    static std::unique_ptr<dovecot> start(std::string& why, options opts);
    static std::unique_ptr<dovecot> start(std::string& why) { return start(why, options{}); }

    ~dovecot();
    dovecot(const dovecot&) = delete;
    dovecot& operator=(const dovecot&) = delete;

    unsigned short plain_port() const noexcept { return plain_port_; }  ///< POP3, with STLS
    unsigned short tls_port() const noexcept { return tls_port_; }      ///< POP3 over implicit TLS
    pid_t pid() const noexcept { return pid_; }
    /// The test CA that signed the server's certificate (for "localhost"
    /// and 127.0.0.1), as PEM and as a file.
    const std::string& ca_pem() const noexcept { return ca_pem_; }
    std::string ca_file() const { return dir_ + "/ca.pem"; }
    /// A client TLS context that trusts only the test CA.
    std::shared_ptr<boost::asio::ssl::context> client_tls_context() const;

    /// Adds a user (name and password without ':' or line breaks) with an
    /// empty Maildir.
    void add_user(const std::string& name, const std::string& password);

    /// Delivers messages to a user's Maildir as a delivery agent would
    /// (tmp/, then a rename into new/). Returns the file names.
    std::vector<std::string> deliver(const std::string& user, const std::vector<std::string>& messages);

    /// The user's messages as Dovecot stores them now (new/ and cur/):
    /// base file name (before any ":2,...") -> contents.
    std::map<std::string, std::string> stored(const std::string& user) const;

    /// The user's Maildir (for tests that need to hold a lock in it).
    std::string maildir(const std::string& user) const { return dir_ + "/mail/" + user; }

    /// Dovecot's log so far.
    std::string log() const;

    /// CPU seconds (user + system) the instance has used so far: the
    /// master, its live children and the children it has reaped.
    double cpu_seconds() const;

private:
    dovecot() = default;
    bool launch(std::string& why, const options& opts);
    void stop() noexcept;
    void write_passwd(const std::string& name, const std::string& password) const;
    void chown_to_mail_user(const std::string& path) const;

    std::string binary_;
    std::string dir_;
    std::string ca_pem_;
    unsigned short plain_port_ = 0;
    unsigned short tls_port_ = 0;
    pid_t pid_ = -1;
    uid_t mail_uid_ = 0;
    gid_t mail_gid_ = 0;
    unsigned long delivered_ = 0;
};

}  // namespace pop3::test

#endif
