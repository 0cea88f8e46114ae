#ifndef POP3FETCH_CONFIG_HPP
#define POP3FETCH_CONFIG_HPP

// pop3fetch's command line, accounts file, URLs and ~/.netrc.

#include "errors.hpp"

#include <pop3/sasl.hpp>
#include <pop3/session_options.hpp>

#include <boost/asio/ssl/context.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pop3fetch {

using pop3::error_code;

enum class destination_kind { maildir, mbox, mda };

/// What an account line may set; the command line sets the defaults.
struct settings {
    std::string password_env;
    std::string password_file;
    destination_kind dest = destination_kind::maildir;
    std::string dest_arg;  ///< directory, file or command; empty: ~/Maildir
    bool keep = false;
    std::string state_dir;  ///< empty: $XDG_STATE_HOME/pop3fetch (~/.local/state/pop3fetch)
    std::size_t pipeline = 0;  ///< 0: auto
    pop3::tls_policy tls = pop3::tls_policy::required;
    std::string ca_file;
    bool allow_plaintext_auth = false;
    pop3::auth_mechanism auth = pop3::auth_mechanism::automatic;
    unsigned timeout_seconds = 60;
    /// Messages LIST says are larger are left on the server (a warning);
    /// one that turns out larger while arriving is refused, never cut.
    std::uint64_t max_size = std::uint64_t(1) << 30;
};

struct account_spec {
    std::string url;
    bool implicit_tls = false;
    std::string user;
    std::string host;
    std::string port;
    settings s;
    std::optional<std::string> password;  ///< set by the demo; otherwise resolved from s
    /// "user@host:port", naming the account in messages and state files.
    std::string id() const { return user + "@" + host + ":" + port; }
};

/// Parses pop3://USER@HOST[:PORT] or pop3s://...; the user is
/// percent-decoded; a missing host is taken from `default_host` (MAILHOST).
error_code parse_url(const std::string& url, const std::string& default_host, account_spec& out);

struct options {
    settings defaults;
    std::vector<std::string> urls;
    std::string accounts_file;
    std::size_t concurrency = 64;
    bool json = false;
    bool quiet = false;
    std::optional<bool> progress;  ///< unset: on when stderr is a terminal
    bool demo = false;
    bool help = false;
    bool version = false;
    /// Not on the command line: the demo's trust in its own server.
    std::shared_ptr<boost::asio::ssl::context> tls_context;
};

/// Parses the command line (argv without the program name). On error,
/// `message` says what is wrong (exit status 2).
bool parse_command_line(const std::vector<std::string>& args, options& out, std::string& message);

/// Reads an accounts file: one URL a line, then options for that account
/// (--keep, --password-env VAR, --maildir DIR, ...); '#' starts a comment.
bool read_accounts_file(const std::string& path, const options& opts, const std::string& default_host,
                        std::vector<account_spec>& out, std::string& message);

/// Looks up the password for (host, user) in a netrc file: the first
/// "machine HOST" entry whose login is the user (or has none), else
/// "default". Refuses a file others can read (netrc_unsafe).
error_code netrc_password(const std::string& path, const std::string& host, const std::string& user,
                          std::optional<std::string>& password);

std::string usage_text();

}  // namespace pop3fetch

#endif
