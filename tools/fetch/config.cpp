#include "config.hpp"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

namespace pop3fetch {
namespace {

bool parse_unsigned(const std::string& s, std::size_t& out, std::size_t max) {
    if (s.empty()) return false;
    std::size_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return false;
    out = v;
    return true;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) return false;
        const int hi = hex_value(in[i + 1]);
        const int lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

enum class scope { command_line, account_line };

/// One option; `next` gives its value. Returns false with `message` set on
/// error; `known` false when the option is not one of `where`'s.
bool apply_option(const std::string& name, const std::function<bool(std::string&)>& next, scope where,
                  settings& s, options* global, bool& known, std::string& message) {
    known = true;
    std::string v;
    auto value = [&]() {
        if (!next(v)) {
            message = name + " needs a value";
            return false;
        }
        return true;
    };
    if (name == "--keep") {
        s.keep = true;
    } else if (name == "--allow-plaintext-auth") {
        s.allow_plaintext_auth = true;
    } else if (name == "--password-env") {
        if (!value()) return false;
        s.password_env = v;
        s.password_file.clear();
    } else if (name == "--password-file") {
        if (!value()) return false;
        s.password_file = v;
        s.password_env.clear();
    } else if (name == "--maildir" || name == "--mbox" || name == "--mda") {
        if (!value()) return false;
        if (v.empty()) {
            message = name + " needs a non-empty value";
            return false;
        }
        s.dest = name == "--maildir" ? destination_kind::maildir
                 : name == "--mbox"  ? destination_kind::mbox
                                     : destination_kind::mda;
        s.dest_arg = v;
    } else if (name == "--state") {
        if (!value()) return false;
        s.state_dir = v;
    } else if (name == "--pipeline") {
        if (!value()) return false;
        std::size_t n = 0;
        if (v == "auto") {
            s.pipeline = 0;
        } else if (parse_unsigned(v, n, 100000) && n > 0) {
            s.pipeline = n;
        } else {
            message = "--pipeline takes a number of commands (1 or more) or auto, not '" + v + "'";
            return false;
        }
    } else if (name == "--tls") {
        if (!value()) return false;
        if (v == "required") s.tls = pop3::tls_policy::required;
        else if (v == "opportunistic") s.tls = pop3::tls_policy::opportunistic;
        else if (v == "none") s.tls = pop3::tls_policy::none;
        else {
            message = "--tls takes required, opportunistic or none, not '" + v + "'";
            return false;
        }
    } else if (name == "--ca-file") {
        if (!value()) return false;
        s.ca_file = v;
    } else if (name == "--auth") {
        if (!value()) return false;
        auto m = pop3::parse_mechanism(v);
        if (!m || *m == pop3::auth_mechanism::external) {
            message = "--auth takes auto, user, apop, plain, login, cram-md5, scram-sha-1, scram-sha-256, "
                      "xoauth2 or oauthbearer, not '" + v + "'";
            return false;
        }
        s.auth = *m;
    } else if (name == "--max-size") {
        if (!value()) return false;
        // A number of octets, with an optional K, M or G (binary) suffix.
        std::string digits = v;
        std::uint64_t unit = 1;
        if (!digits.empty()) {
            const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(digits.back())));
            if (u == 'K' || u == 'M' || u == 'G') {
                unit = u == 'K' ? 1024 : u == 'M' ? 1024 * 1024 : 1024 * 1024 * 1024;
                digits.pop_back();
            }
        }
        constexpr std::uint64_t most = std::uint64_t(1) << 42;  // 4096G
        std::size_t n = 0;
        if (!parse_unsigned(digits, n, static_cast<std::size_t>(most / unit)) || n == 0) {
            message = "--max-size takes a size in octets with an optional K, M or G (at most 4096G), not '" + v + "'";
            return false;
        }
        s.max_size = n * unit;
    } else if (name == "--timeout") {
        if (!value()) return false;
        std::size_t n = 0;
        if (!parse_unsigned(v, n, 86400) || n == 0) {
            message = "--timeout takes seconds (1 to 86400), not '" + v + "'";
            return false;
        }
        s.timeout_seconds = static_cast<unsigned>(n);
    } else if (where == scope::command_line && global != nullptr) {
        if (name == "--accounts") {
            if (!value()) return false;
            global->accounts_file = v;
        } else if (name == "--concurrency") {
            if (!value()) return false;
            std::size_t n = 0;
            if (!parse_unsigned(v, n, 100000) || n == 0) {
                message = "--concurrency takes a number of maildrops (1 or more), not '" + v + "'";
                return false;
            }
            global->concurrency = n;
        } else if (name == "--json") {
            global->json = true;
        } else if (name == "--quiet" || name == "-q") {
            global->quiet = true;
            global->progress = false;
        } else if (name == "--progress") {
            global->progress = true;
        } else if (name == "--demo") {
            global->demo = true;
        } else if (name == "--help" || name == "-h") {
            global->help = true;
        } else if (name == "--version") {
            global->version = true;
        } else {
            known = false;
        }
    } else {
        known = false;
    }
    if (!known) message = "unknown option " + name;
    return known;
}

/// Splits an accounts-file line into words: blanks separate, '...' and
/// "..." quote, '#' outside quotes starts a comment.
bool split_words(const std::string& line, std::vector<std::string>& words, std::string& message) {
    words.clear();
    std::string cur;
    bool in_word = false;
    char quote = 0;
    for (char c : line) {
        if (quote != 0) {
            if (c == quote) quote = 0;
            else cur += c;
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '#' && !in_word) {
            break;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            if (in_word) words.push_back(std::move(cur));
            cur.clear();
            in_word = false;
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (quote != 0) {
        message = "unterminated quote";
        return false;
    }
    if (in_word) words.push_back(std::move(cur));
    return true;
}

}  // namespace

error_code parse_url(const std::string& url, const std::string& default_host, account_spec& out) {
    std::string_view rest = url;
    if (rest.rfind("pop3://", 0) == 0) {
        out.implicit_tls = false;
        rest.remove_prefix(7);
    } else if (rest.rfind("pop3s://", 0) == 0) {
        out.implicit_tls = true;
        rest.remove_prefix(8);
    } else {
        return errc::bad_url;
    }
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.find('/') != std::string_view::npos || rest.find('?') != std::string_view::npos) return errc::bad_url;
    const auto at = rest.rfind('@');
    if (at == std::string_view::npos || at == 0) return errc::bad_url;  // the user is required
    if (!percent_decode(rest.substr(0, at), out.user) || out.user.empty()) return errc::bad_url;
    for (char c : out.user) {
        if (c == '\r' || c == '\n' || c == '\0') return errc::bad_url;
    }
    std::string_view hostport = rest.substr(at + 1);
    std::string_view port;
    if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos) return errc::bad_url;
        out.host = std::string(hostport.substr(1, close - 1));
        std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return errc::bad_url;
            port = after.substr(1);
        }
    } else {
        const auto colon = hostport.find(':');
        out.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
    }
    if (out.host.empty()) out.host = default_host;
    if (out.host.empty()) return errc::bad_url;
    if (port.empty()) {
        out.port = out.implicit_tls ? "995" : "110";
    } else {
        std::size_t n = 0;
        if (!parse_unsigned(std::string(port), n, 65535) || n == 0) return errc::bad_url;
        out.port = std::to_string(n);
    }
    out.url = url;
    return {};
}

bool parse_command_line(const std::vector<std::string>& args, options& out, std::string& message) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string arg = args[i];
        if (arg.size() > 1 && arg[0] == '-') {
            std::optional<std::string> inline_value;
            if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
                inline_value = arg.substr(eq + 1);
                arg.resize(eq);
            }
            bool used_inline = false;
            auto next = [&](std::string& v) {
                if (inline_value) {
                    v = *inline_value;
                    used_inline = true;
                    return true;
                }
                if (i + 1 >= args.size()) return false;
                v = args[++i];
                return true;
            };
            bool known = false;
            if (!apply_option(arg, next, scope::command_line, out.defaults, &out, known, message)) return false;
            if (inline_value && !used_inline) {
                message = arg + " takes no value";
                return false;
            }
        } else {
            out.urls.push_back(arg);
        }
    }
    return true;
}

bool read_accounts_file(const std::string& path, const options& opts, const std::string& default_host,
                        std::vector<account_spec>& out, std::string& message) {
    std::ifstream in(path);
    if (!in) {
        message = "cannot read the accounts file " + path + ": " + std::strerror(errno);
        return false;
    }
    std::string line;
    std::vector<std::string> words;
    for (std::size_t lineno = 1; std::getline(in, line); ++lineno) {
        const std::string where = path + ":" + std::to_string(lineno) + ": ";
        if (!split_words(line, words, message)) {
            message = where + message;
            return false;
        }
        if (words.empty()) continue;
        account_spec a;
        if (parse_url(words[0], default_host, a)) {
            message = where + "'" + words[0] + "': " + make_error_code(errc::bad_url).message();
            return false;
        }
        a.s = opts.defaults;
        for (std::size_t i = 1; i < words.size(); ++i) {
            auto next = [&](std::string& v) {
                if (i + 1 >= words.size()) return false;
                v = words[++i];
                return true;
            };
            bool known = false;
            if (!apply_option(words[i], next, scope::account_line, a.s, nullptr, known, message)) {
                message = where + message + (known ? "" : " (an account line takes account options only)");
                return false;
            }
        }
        out.push_back(std::move(a));
    }
    return true;
}

error_code netrc_password(const std::string& path, const std::string& host, const std::string& user,
                          std::optional<std::string>& password) {
    password.reset();
    std::ifstream in(path);
    if (!in) return errno == ENOENT ? error_code() : error_code(errno, boost::system::system_category());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();

    // Tokens; "macdef" bodies run to the next empty line and are skipped.
    std::vector<std::string> tokens;
    std::istringstream lines(text);
    std::string line;
    bool in_macro = false;
    while (std::getline(lines, line)) {
        if (in_macro) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) in_macro = false;
            continue;
        }
        // Words split at blanks; a word in double quotes may hold blanks,
        // with backslash escapes (as curl reads it).
        for (std::size_t i = 0; i < line.size();) {
            if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
                ++i;
                continue;
            }
            std::string w;
            if (line[i] == '"') {
                for (++i; i < line.size() && line[i] != '"'; ++i) {
                    if (line[i] == '\\' && i + 1 < line.size()) ++i;
                    w += line[i];
                }
                ++i;
            } else {
                while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') w += line[i++];
            }
            if (w == "macdef") {
                in_macro = true;
                break;
            }
            tokens.push_back(w);
        }
    }

    struct entry {
        std::string machine;  // empty: default
        std::string login, password;
        bool has_password = false;
    };
    std::vector<entry> entries;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const std::string& t = tokens[i];
        if (t == "machine" && i + 1 < tokens.size()) {
            entries.push_back({tokens[++i], {}, {}, false});
        } else if (t == "default") {
            entries.push_back({});
        } else if ((t == "login" || t == "password" || t == "account") && i + 1 < tokens.size()) {
            const std::string& v = tokens[++i];
            if (entries.empty()) continue;
            if (t == "login") entries.back().login = v;
            if (t == "password") {
                entries.back().password = v;
                entries.back().has_password = true;
            }
        }
    }
    bool any_password = false;
    for (const auto& e : entries) any_password = any_password || e.has_password;
    if (any_password) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) return errc::netrc_unsafe;
    }
    auto pick = [&](bool want_default) -> const entry* {
        for (const auto& e : entries) {
            const bool is_default = e.machine.empty();
            if (is_default != want_default) continue;
            if (!want_default && e.machine != host) continue;
            if (!e.login.empty() && e.login != user) continue;
            if (e.has_password) return &e;
        }
        return nullptr;
    };
    const entry* e = pick(false);
    if (e == nullptr) e = pick(true);
    if (e != nullptr) password = e->password;
    return {};
}

std::string usage_text() {
    return R"(usage: pop3fetch [OPTIONS] URL...
Fetches mail from POP3 maildrops, many at once, pipelined, and delivers it
durably before anything is deleted from the server.

  URL                      pop3://USER@HOST[:PORT] (STLS) or pop3s://USER@HOST[:PORT] (implicit TLS);
                           a URL without a host takes $MAILHOST
  --accounts FILE          more accounts, one URL per line (# comments), optional per-line options
  --password-env VAR | --password-file FILE     otherwise ~/.netrc (machine HOST login USER password P)
  --maildir DIR | --mbox FILE | --mda 'COMMAND'  where mail goes (default: ~/Maildir)
  --keep                   leave mail on the server; fetch only messages not fetched before (UIDL)
  --state DIR              where keep-mode state lives (default under $XDG_STATE_HOME)
  --concurrency N          maildrops at once (default 64)
  --pipeline N|auto        commands in flight per session (default auto)
  --tls required|opportunistic|none   (default required)   --ca-file FILE
  --allow-plaintext-auth   allow a password over an unencrypted connection
  --auth auto|user|apop|plain|login|cram-md5|scram-sha-1|scram-sha-256|xoauth2|oauthbearer
  --timeout SECONDS        per network operation, and per reply (plus 1 s per KiB listed) (default 60)
  --max-size SIZE          leave larger messages on the server, e.g. 50M (default 1G)
  --json                   print a machine-readable summary on stdout
  --quiet / --progress     (a progress display is on by default when stderr is a terminal)
  --demo                   start the built-in test server with generated maildrops and fetch them

Exit status: 0 every account done; 1 one or more accounts failed (each said on
stderr with its account and the server's text); 2 usage or configuration error.
)";
}

}  // namespace pop3fetch
