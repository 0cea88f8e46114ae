#include <pop3/testing/server.hpp>

#include "certificate.hpp"

#include <pop3/apop.hpp>
#include <pop3/sasl.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <deque>
#include <functional>
#include <queue>
#include <unordered_set>

namespace pop3::testing {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Replies due within this of each other leave together (one timer expiry
// for a burst): a reply may leave up to a tenth of a millisecond early.
constexpr auto release_slack = std::chrono::microseconds(100);

namespace {

// Whether a reply released at `release` may leave at `now`: every place
// that decides must agree, or a writer woken early would sleep again.
bool due(clock::time_point release, clock::time_point now) { return release <= now + release_slack; }

struct stored_message {
    std::string content;
    std::string uid;
    std::string retr_reply;  // "+OK n octets", the stuffed body, ".": sent as is, never copied

    /// The dot-stuffed body, without the status line and the terminator.
    std::string_view stuffed() const {
        const std::size_t start = retr_reply.find('\n') + 1;
        return std::string_view(retr_reply).substr(start, retr_reply.size() - start - 3);
    }
};

std::string stuff(const std::string& content) {
    std::string out;
    out.reserve(content.size() + content.size() / 64 + 8);
    bool line_start = true;
    for (char c : content) {
        if (line_start && c == '.') out += '.';
        out += c;
        line_start = c == '\n';
    }
    return out;
}

// A stable UID: the first 16 hex digits of SHA-256 of the content.
std::string make_uid(const std::string& content) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(content.data(), content.size(), md, &len, EVP_sha256(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string uid;
    for (unsigned i = 0; i < 8; ++i) {
        uid += hex[md[i] >> 4];
        uid += hex[md[i] & 15];
    }
    return uid;
}

struct account {
    std::uint64_t refused = 0;  // logins refused so far by fault_plan::refuse_logins
    std::string password;
    std::vector<std::shared_ptr<const stored_message>> messages;
    std::optional<fault_plan> faults;
    bool locked = false;
    std::vector<std::shared_ptr<const stored_message>> deleted;  // shared, not copied: a swarm deletes GBs
};

}  // namespace

struct connection;

struct server::impl : std::enable_shared_from_this<impl> {
    asio::any_io_executor ex;
    server_options options;
    tcp::acceptor acceptor;
    std::map<std::string, account> accounts;
    server_stats stats;
    detail::key_and_certificate identity;
    std::shared_ptr<ssl::context> tls;
    std::unordered_set<connection*> live;
    bool running = false;
    std::uint64_t next_connection_id = 0;

    impl(asio::any_io_executor e, server_options o)
        : ex(std::move(e)), options(std::move(o)), acceptor(ex) {
        if (!options.tls_certificate_pem.empty()) {
            identity.certificate_pem = options.tls_certificate_pem;
            identity.key_pem = options.tls_key_pem;
        } else {
            identity = detail::make_self_signed({"localhost"}, {"127.0.0.1", "::1"});
        }
        tls = std::make_shared<ssl::context>(ssl::context::tls_server);
        tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3);
        if (options.tls_max_version != 0) {
            // An old server: offer only up to that version, at security level
            // 0 so that OpenSSL really offers it.
            SSL_CTX_set_security_level(tls->native_handle(), 0);
            SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_VERSION);
            SSL_CTX_set_max_proto_version(tls->native_handle(), options.tls_max_version);
            SSL_CTX_set_cipher_list(tls->native_handle(), "DEFAULT:@SECLEVEL=0");
        }
        tls->use_certificate_chain(asio::buffer(identity.certificate_pem));
        tls->use_private_key(asio::buffer(identity.key_pem), ssl::context::pem);
        if (!options.client_ca_pem.empty()) {
            // Ask for a client certificate; go on without one (EXTERNAL then fails).
            tls->add_certificate_authority(asio::buffer(options.client_ca_pem));
            tls->set_verify_mode(ssl::verify_peer);
        }
    }

    asio::awaitable<void> accept_loop();

    // Replies wait out the propagation delay in one line for the whole
    // server, ordered by release time, under one timer: a connection's
    // writer sleeps until the line wakes it. (A timer per connection cost
    // a timer-queue update and an extra wakeup for every reply.)
    struct due_writer {
        clock::time_point at;
        std::weak_ptr<connection> c;
        bool operator>(const due_writer& o) const noexcept { return at > o.at; }
    };
    std::priority_queue<due_writer, std::vector<due_writer>, std::greater<>> line;
    asio::steady_timer line_timer{ex};
    bool line_running = false;
    void wake_at(clock::time_point at, std::weak_ptr<connection> c);
    asio::awaitable<void> run_line();
};

// One client connection: a reader that answers commands as they arrive and
// queues the replies with their release time, and a writer that sends them.
struct connection : std::enable_shared_from_this<connection> {
    std::shared_ptr<server::impl> srv;
    tcp::socket socket;
    std::unique_ptr<ssl::stream<tcp::socket>> tls;
    asio::steady_timer wake;
    std::uint64_t id;

    struct outgoing {
        clock::time_point release;
        std::string bytes;
        bool close_after = false;
        std::shared_ptr<const stored_message> shared;  // when set: its retr_reply is the bytes

        std::string_view view() const { return shared ? std::string_view(shared->retr_reply) : std::string_view(bytes); }
    };
    std::deque<outgoing> out;
    bool in_line = false;  // the server's delay line will wake the writer
    bool closing = false;
    clock::time_point next_send{};
    std::uint64_t written = 0;
    std::uint64_t drop_at = 0;  // 0: never

    // POP3 state
    bool authorized = false;
    std::string pending_user;
    std::string user;
    account* acct = nullptr;
    std::vector<bool> marked;
    std::uint64_t highest_accessed = 0;
    std::uint64_t command_number = 0;
    bool stalled = false;
    bool upgrade_pending = false;
    std::string timestamp;
    const fault_plan* faults;
    std::string current_command;  // the line being answered; empty for the greeting
    clock::time_point last_command{};
    bool watchdog_running = false;
    asio::steady_timer idle_timer{srv->ex};

    struct sasl_exchange {
        std::string mechanism;
        int step = 0;
        std::string user;
        std::string gs2, client_first_bare, server_first, challenge;
        scram_keys keys;
    };
    std::optional<sasl_exchange> sasl;

    connection(std::shared_ptr<server::impl> s, tcp::socket sock, std::uint64_t n)
        : srv(std::move(s)), socket(std::move(sock)), wake(srv->ex), id(n), faults(&srv->options.faults) {
        srv->live.insert(this);
        ++srv->stats.connections;
        ++srv->stats.active;
        srv->stats.peak_active = std::max(srv->stats.peak_active, srv->stats.active);
        set_drop_point();
    }
    ~connection() {
        srv->live.erase(this);
        uncount();
        if (acct != nullptr) acct->locked = false;
    }

    // A connection stops counting as active when the server closes it, not
    // when its coroutines are gone: a client that reconnects at once after
    // QUIT must not see one more than it holds.
    bool counted = true;
    void uncount() {
        if (!counted) return;
        counted = false;
        --srv->stats.active;
    }

    void set_drop_point() {
        drop_at = faults->drop_after_bytes.value_or(0);
        if (faults->random_drop_seed != 0) {
            std::uint64_t x = faults->random_drop_seed * 0x9E3779B97F4A7C15ull + id * 0xBF58476D1CE4E5B9ull;
            x ^= x >> 31;
            drop_at = 1 + x % std::max<std::uint64_t>(1, faults->random_drop_window);
        }
    }

    void close() {
        closing = true;
        uncount();
        idle_timer.cancel();
        if (acct != nullptr) {  // a dropped session releases its maildrop (no UPDATE)
            acct->locked = false;
            acct = nullptr;
            authorized = false;
        }
        error_code ignored;
        socket.close(ignored);
        if (tls) tls->lowest_layer().close(ignored);
        wake.cancel();
    }

    clock::duration round_trip() const { return 2 * srv->options.one_way_delay; }

    void count_handshake() {
        ++srv->stats.tls_handshakes;
        if (SSL_session_reused(tls->native_handle()) == 1) ++srv->stats.tls_resumed;
    }

    void send(clock::time_point arrived, std::string bytes, bool close_after = false) {
        if (faults->rewrite) {
            faults->rewrite(current_command, bytes);
            if (bytes.empty() && !close_after) return;
        }
        out.push_back({arrived + round_trip(), std::move(bytes), close_after, nullptr});
        queued();
    }

    void send_retr(clock::time_point arrived, std::shared_ptr<const stored_message> m) {
        if (faults->rewrite) return send(arrived, m->retr_reply);
        out.push_back({arrived + round_trip(), {}, false, std::move(m)});
        queued();
    }

    // A reply joined `out`: the writer wakes when its release comes (a
    // writer busy writing looks at `out` again once done).
    void queued() {
        if (in_line || out.size() != 1) return;
        if (due(out.front().release, clock::now())) {  // no delay to wait out
            wake.cancel();
            return;
        }
        in_line = true;
        srv->wake_at(out.front().release, weak_from_this());
    }
    void woken() {
        in_line = false;
        wake.cancel();
    }

    // RFC 1939's autologout: a connection idle for faults->autologout is
    // closed, with nothing committed.
    void start_watchdog() {
        if (watchdog_running || faults->autologout.count() <= 0) return;
        watchdog_running = true;
        asio::co_spawn(srv->ex, watchdog(), asio::detached);
    }
    asio::awaitable<void> watchdog() {
        auto self = shared_from_this();
        while (!closing) {
            if (faults->autologout.count() <= 0) {  // the account's own plan has none
                watchdog_running = false;
                co_return;
            }
            const auto due = last_command + faults->autologout;
            if (clock::now() >= due) {
                close();
                co_return;
            }
            idle_timer.expires_at(due);
            co_await idle_timer.async_wait(use_tuple);
        }
    }

    template <class Buffer>
    asio::awaitable<std::tuple<error_code, std::size_t>> write_some(const Buffer& b) {
        if (tls) co_return co_await tls->async_write_some(b, use_tuple);
        co_return co_await socket.async_write_some(b, use_tuple);
    }
    template <class Buffers>
    asio::awaitable<std::tuple<error_code, std::size_t>> async_write(const Buffers& b) {
        if (tls) co_return co_await asio::async_write(*tls, b, use_tuple);
        co_return co_await asio::async_write(socket, b, use_tuple);
    }
    template <class Buffer>
    asio::awaitable<std::tuple<error_code, std::size_t>> read_some(const Buffer& b) {
        if (tls) co_return co_await tls->async_read_some(b, use_tuple);
        co_return co_await socket.async_read_some(b, use_tuple);
    }

    asio::awaitable<void> writer() {
        auto self = shared_from_this();
        const std::uint64_t bandwidth = srv->options.bandwidth;
        while (!closing) {
            if (out.empty() || !due(out.front().release, clock::now())) {
                if (!out.empty() && !in_line) {
                    in_line = true;
                    srv->wake_at(out.front().release, weak_from_this());
                }
                wake.expires_at(clock::time_point::max());
                co_await wake.async_wait(use_tuple);
                continue;
            }
            outgoing& o = out.front();
            if (bandwidth == 0 && drop_at == 0 && !faults->one_byte_writes && !o.close_after) {
                // Every reply already due leaves in one gathered write, as a
                // server's output buffer would: fewer system calls here and
                // fewer reads for the client.
                std::vector<asio::const_buffer> gather;
                std::size_t count = 0, octets = 0;
                const auto now = clock::now();
                for (const outgoing& next : out) {
                    if (!due(next.release, now) || next.close_after || octets >= 256 * 1024) break;
                    const std::string_view bytes = next.view();
                    gather.emplace_back(asio::buffer(bytes.data(), bytes.size()));
                    octets += bytes.size();
                    ++count;
                }
                auto [ec, sent] = co_await async_write(gather);
                if (ec) {
                    close();
                    co_return;
                }
                written += sent;
                srv->stats.bytes_out += sent;
                out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(count));
                continue;
            }
            const std::string_view bytes = o.view();
            std::size_t pos = 0;
            while (pos < bytes.size() && !closing) {
                std::size_t n = bytes.size() - pos;
                if (faults->one_byte_writes) n = 1;
                if (bandwidth != 0) n = std::min<std::size_t>(n, 1024);
                if (drop_at != 0) n = std::min<std::uint64_t>(n, drop_at - written);
                if (bandwidth != 0) {
                    // The link is busy until the previous octets are through;
                    // these leave when they would have finished crossing it.
                    const auto finish = std::max(clock::now(), next_send) +
                                        std::chrono::nanoseconds(n * 1'000'000'000ull / bandwidth);
                    next_send = finish;
                    while (!closing && clock::now() < finish) {  // send() may wake us early
                        wake.expires_at(finish);
                        co_await wake.async_wait(use_tuple);
                    }
                    if (closing) break;
                }
                auto [ec, sent] = co_await write_some(asio::buffer(bytes.data() + pos, n));
                if (ec) {
                    close();
                    co_return;
                }
                pos += sent;
                written += sent;
                srv->stats.bytes_out += sent;
                if (drop_at != 0 && written >= drop_at) {
                    close();
                    co_return;
                }
            }
            const bool close_after = o.close_after;
            out.pop_front();
            if (close_after) {
                if (tls) {
                    error_code ignored;
                    tls->lowest_layer().shutdown(tcp::socket::shutdown_send, ignored);
                }
                close();
                co_return;
            }
        }
    }

    asio::awaitable<void> reader() {
        auto self = shared_from_this();
        if (srv->options.tls == server_options::tls_mode::implicit) {
            tls = std::make_unique<ssl::stream<tcp::socket>>(std::move(socket), *srv->tls);
            auto [ec] = co_await tls->async_handshake(ssl::stream_base::server, use_tuple);
            if (ec) {
                close();
                co_return;
            }
            count_handshake();
        }
        asio::co_spawn(srv->ex, writer(), asio::detached);
        last_command = clock::now();
        start_watchdog();
        greet();
        std::string in;
        std::array<char, 16 * 1024> buf;
        while (!closing) {
            auto [ec, n] = co_await read_some(asio::buffer(buf));
            if (ec) break;
            const auto arrived = clock::now();
            in.append(buf.data(), n);
            std::size_t start = 0;
            for (std::size_t lf; !closing && (lf = in.find('\n', start)) != std::string::npos;) {
                std::string_view line(in.data() + start, lf - start);
                if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                start = lf + 1;
                last_command = arrived;
                handle(std::string(line), arrived);
                if (faults->pipelining_first_only && !sasl) {
                    start = in.size();  // the rest of this read is lost
                    break;
                }
                if (upgrade_pending) {
                    // Whatever followed STLS in the same read is dropped:
                    // no plaintext may reach the TLS session (RFC 2595).
                    start = in.size();
                    break;
                }
            }
            in.erase(0, start);
            if (in.size() > 4096) {
                send(arrived, "-ERR line too long\r\n", true);
                break;
            }
            if (upgrade_pending) {
                while (!out.empty() && !closing) {
                    asio::steady_timer t(srv->ex, std::chrono::milliseconds(1));
                    co_await t.async_wait(use_tuple);
                }
                if (closing) break;
                tls = std::make_unique<ssl::stream<tcp::socket>>(std::move(socket), *srv->tls);
                auto [hec] = co_await tls->async_handshake(ssl::stream_base::server, use_tuple);
                upgrade_pending = false;
                if (hec) break;
                count_handshake();
            }
        }
        close();
    }

    void greet() {
        const auto now = clock::now();
        if (faults->greeting_err) {
            send(now, "-ERR [SYS/TEMP] server not available\r\n", true);
            return;
        }
        std::string g = "+OK POP3 test server ready";
        if (srv->options.apop) {
            timestamp = "<" + std::to_string(id) + "." + std::to_string(now.time_since_epoch().count() % 1000000007) +
                        "@pop3.test>";
            g += " " + timestamp;
        }
        send(now, g + "\r\n");
    }

    std::string capa_reply() const {
        const auto& o = srv->options;
        std::string r = "+OK Capability list follows\r\n";
        if (o.top) r += "TOP\r\n";
        if (o.user) r += "USER\r\n";
        if (o.uidl) r += "UIDL\r\n";
        if (o.resp_codes) r += "RESP-CODES\r\nAUTH-RESP-CODE\r\n";
        if (o.pipelining) r += "PIPELINING\r\n";
        if (!o.sasl.empty()) {
            r += "SASL";
            for (const auto& m : o.sasl) r += " " + m;
            r += "\r\n";
        }
        if (o.tls == server_options::tls_mode::stls && !tls) r += "STLS\r\n";
        if (o.login_delay != 0) r += "LOGIN-DELAY " + std::to_string(o.login_delay) + "\r\n";
        if (!o.expire.empty()) r += "EXPIRE " + o.expire + "\r\n";
        r += "IMPLEMENTATION pop3-testing\r\n.\r\n";
        return r;
    }

    // The message numbered n (1-based), unless out of range or marked.
    const stored_message* message(const std::string& arg) {
        const auto* shared = message_ptr(arg);
        return shared ? shared->get() : nullptr;
    }
    const std::shared_ptr<const stored_message>* message_ptr(const std::string& arg) {
        if (arg.empty() || arg.size() > 18 || arg.find_first_not_of("0123456789") != std::string::npos)
            return nullptr;
        const std::uint64_t n = std::stoull(arg);
        if (n == 0 || n > acct->messages.size() || marked[n - 1]) return nullptr;
        return &acct->messages[n - 1];
    }

    void login(std::string name, clock::time_point at) {
        auto it = srv->accounts.find(name);
        if (it->second.faults) {
            faults = &*it->second.faults;
            set_drop_point();  // counted from the start of the connection
        }
        if (faults->in_use || it->second.locked) {
            send(at, "-ERR [IN-USE] maildrop is locked\r\n");
            return;
        }
        if (it->second.refused < faults->refuse_logins) {
            ++it->second.refused;
            send(at, "-ERR [" + faults->refuse_code + "] login refused, try later\r\n");
            return;
        }
        acct = &it->second;
        acct->locked = true;
        start_watchdog();  // the account's own plan may have an autologout
        user = std::move(name);
        authorized = true;
        marked.assign(acct->messages.size(), false);
        ++srv->stats.logins;
        send(at, "+OK maildrop has " + std::to_string(acct->messages.size()) + " messages\r\n");
    }

    static auth_mechanism scram_hash(const std::string& mechanism) {
        return mechanism == "SCRAM-SHA-1" ? auth_mechanism::scram_sha_1 : auth_mechanism::scram_sha_256;
    }

    void sasl_fail(clock::time_point at, const char* why = "authentication failed") {
        sasl.reset();
        send(at, std::string("-ERR [AUTH] ") + why + "\r\n");
    }

    void sasl_challenge(clock::time_point at, std::string_view data) {
        send(at, "+ " + base64_encode(data) + "\r\n");
    }

    const account* find_account(const std::string& name) const {
        auto it = srv->accounts.find(name);
        return it == srv->accounts.end() ? nullptr : &it->second;
    }

    void auth(const std::vector<std::string>& args, clock::time_point at) {
        std::string mechanism = args[1];
        for (char& c : mechanism) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const auto& offered = srv->options.sasl;
        if (std::find(offered.begin(), offered.end(), mechanism) == offered.end())
            return send(at, "-ERR unsupported authentication mechanism\r\n");
        sasl.emplace();
        sasl->mechanism = mechanism;
        if (args.size() >= 3) {
            const auto initial = args[2] == "=" ? std::optional<std::string>("") : base64_decode(args[2]);
            if (!initial) return sasl_fail(at, "invalid base64");
            return sasl_data(*initial, at);
        }
        if (mechanism == "LOGIN") {
            sasl->step = 1;
            return sasl_challenge(at, "Username:");
        }
        if (mechanism == "CRAM-MD5") {
            sasl->challenge = "<" + std::to_string(id) + "." + std::to_string(srv->stats.commands) + "@pop3.test>";
            sasl->step = 1;
            return sasl_challenge(at, sasl->challenge);
        }
        send(at, "+ \r\n");  // an empty challenge: send the initial response
    }

    void sasl_line(const std::string& line, clock::time_point at) {
        if (line == "*") {
            sasl.reset();
            return send(at, "-ERR authentication cancelled\r\n");
        }
        const auto data = base64_decode(line);
        if (!data) return sasl_fail(at, "invalid base64");
        sasl_data(*data, at);
    }

    // One client message of the exchange in progress.
    void sasl_data(const std::string& data, clock::time_point at) {
        sasl_exchange& x = *sasl;
        const std::string& m = x.mechanism;
        if (m == "PLAIN") {
            const std::size_t a = data.find('\0');
            const std::size_t b = a == std::string::npos ? a : data.find('\0', a + 1);
            if (b == std::string::npos) return sasl_fail(at);
            return sasl_check(data.substr(a + 1, b - a - 1), data.substr(b + 1), at);
        }
        if (m == "LOGIN") {
            if (x.step <= 1) {
                x.user = data;
                x.step = 2;
                return sasl_challenge(at, "Password:");
            }
            return sasl_check(x.user, data, at);
        }
        if (m == "CRAM-MD5") {
            const std::size_t sp = data.rfind(' ');
            if (sp == std::string::npos) return sasl_fail(at);
            const account* a = find_account(data.substr(0, sp));
            std::string expected;
            if (a != nullptr) {
                static constexpr char hexdigits[] = "0123456789abcdef";
                for (unsigned char c : hmac(auth_mechanism::cram_md5, a->password, x.challenge)) {
                    expected += hexdigits[c >> 4];
                    expected += hexdigits[c & 15];
                }
            }
            if (a == nullptr || data.substr(sp + 1) != expected) return sasl_fail(at);
            return finish_sasl(data.substr(0, sp), at);
        }
        if (m == "EXTERNAL") {
            // The identity is the verified client certificate's common name.
            X509* peer = tls ? SSL_get0_peer_certificate(tls->native_handle()) : nullptr;
            if (peer == nullptr || SSL_get_verify_result(tls->native_handle()) != X509_V_OK)
                return sasl_fail(at, "no verified client certificate");
            char cn[256] = {};
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
            if (!data.empty() && data != cn) return sasl_fail(at, "not authorized for that identity");
            if (find_account(cn) == nullptr) return sasl_fail(at);
            return finish_sasl(cn, at);
        }
        if (m == "XOAUTH2" || m == "OAUTHBEARER") {
            if (x.step == 1) return sasl_fail(at, "invalid token");  // the answer to our error JSON
            std::string user, token;
            std::size_t pos = m == "OAUTHBEARER" ? data.find('\x01') : 0;
            if (m == "OAUTHBEARER") {
                const std::size_t a = data.find("a=");
                if (a != std::string::npos) user = data.substr(a + 2, data.find(',', a) - a - 2);
            }
            for (std::size_t i = pos; i < data.size();) {
                std::size_t end = data.find('\x01', i);
                if (end == std::string::npos) end = data.size();
                const std::string kv = data.substr(i, end - i);
                if (kv.rfind("user=", 0) == 0) user = kv.substr(5);
                if (kv.rfind("auth=Bearer ", 0) == 0) token = kv.substr(12);
                i = end + 1;
            }
            const account* a = find_account(user);
            if (a != nullptr && !token.empty() && a->password == token) return finish_sasl(user, at);
            x.step = 1;
            return sasl_challenge(at, m == "XOAUTH2"
                                          ? R"({"status":"401","schemes":"bearer","scope":"https://mail.test/"})"
                                          : R"({"status":"invalid_token","scope":"mail"})");
        }
        // SCRAM-SHA-1 / SCRAM-SHA-256
        const auth_mechanism h = scram_hash(m);
        if (x.step == 0) {
            const std::size_t second_comma = data.find(',', data.find(',') + 1);
            if (data.size() < 3 || data.compare(0, 1, "n") != 0 || second_comma == std::string::npos)
                return sasl_fail(at, "bad client-first message");
            x.gs2 = data.substr(0, second_comma + 1);
            x.client_first_bare = data.substr(second_comma + 1);
            const std::size_t n = x.client_first_bare.find("n=");
            const std::size_t r = x.client_first_bare.find(",r=");
            if (n != 0 || r == std::string::npos) return sasl_fail(at, "bad client-first message");
            x.user = x.client_first_bare.substr(2, r - 2);
            const account* a = find_account(x.user);
            if (a == nullptr) return sasl_fail(at);
            const std::string salt = hash(auth_mechanism::scram_sha_256, "salt:" + x.user).substr(0, 16);
            x.keys = scram_derive(h, a->password, salt, 4096);
            x.server_first = "r=" + x.client_first_bare.substr(r + 3) + "srv" + std::to_string(id) +
                             ",s=" + base64_encode(salt) + ",i=4096";
            x.step = 1;
            return sasl_challenge(at, x.server_first);
        }
        if (x.step == 1) {
            const std::size_t p = data.rfind(",p=");
            if (p == std::string::npos) return sasl_fail(at, "bad client-final message");
            const std::string without_proof = data.substr(0, p);
            const auto proof = base64_decode(data.substr(p + 3));
            const std::string auth_message = x.client_first_bare + "," + x.server_first + "," + without_proof;
            const std::string signature = hmac(h, x.keys.stored_key, auth_message);
            if (!proof || proof->size() != signature.size() ||
                without_proof.rfind("c=" + base64_encode(x.gs2) + ",", 0) != 0)
                return sasl_fail(at);
            std::string client_key = *proof;
            for (std::size_t i = 0; i < client_key.size(); ++i)
                client_key[i] = static_cast<char>(client_key[i] ^ signature[i]);
            if (hash(h, client_key) != x.keys.stored_key) return sasl_fail(at);
            std::string server_signature = hmac(h, x.keys.server_key, auth_message);
            if (faults->bad_scram_signature) server_signature[0] = static_cast<char>(server_signature[0] ^ 1);
            x.step = 2;
            return sasl_challenge(at, "v=" + base64_encode(server_signature));
        }
        // step 2: the client's empty answer to the server-final message
        if (!data.empty()) return sasl_fail(at);
        return finish_sasl(x.user, at);
    }

    void sasl_check(const std::string& user, const std::string& password, clock::time_point at) {
        const account* a = find_account(user);
        if (a == nullptr || a->password != password) return sasl_fail(at);
        finish_sasl(user, at);
    }

    void finish_sasl(const std::string& user, clock::time_point at) {
        sasl.reset();
        login(user, at);
    }

    void handle(std::string line, clock::time_point at) {
        current_command = line;
        ++srv->stats.commands;
        ++command_number;
        if (stalled) return;
        if (sasl) return sasl_line(line, at);
        if (faults->stall_at_command && command_number >= *faults->stall_at_command) {
            stalled = true;
            return;
        }
        if (faults->err_at_command && command_number == *faults->err_at_command) {
            send(at, "-ERR [SYS/TEMP] injected fault\r\n");
            return;
        }
        if (authorized && faults->refuse && faults->refuse(line)) {
            send(at, "-ERR [SYS/TEMP] refused by the fault plan\r\n");
            return;
        }
        if (faults->garbage_at_command && command_number == *faults->garbage_at_command) {
            send(at, "* this is not POP3\r\n");
            return;
        }
        std::vector<std::string> args;
        std::size_t pos = 0;
        while (pos <= line.size()) {
            const std::size_t sp = line.find(' ', pos);
            args.push_back(line.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
            if (sp == std::string::npos) break;
            pos = sp + 1;
        }
        std::string cmd = args.empty() ? std::string() : args[0];
        for (char& c : cmd) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const auto& o = srv->options;

        if (cmd == "CAPA") return send(at, capa_reply());
        if (cmd == "QUIT") {
            if (authorized && faults->quit_err) {
                acct->locked = false;
                acct = nullptr;
                authorized = false;
                stalled = true;
                return send(at, "-ERR [SYS/TEMP] some deleted messages not removed\r\n", true);
            }
            if (authorized && faults->quit_drop == fault_plan::quit_drop::before_commit) {
                close();
                return;
            }
            const bool was_authorized = authorized;
            if (authorized) {
                for (std::size_t i = acct->messages.size(); i-- > 0;) {
                    if (!marked[i]) continue;
                    acct->deleted.push_back(acct->messages[i]);
                    acct->messages.erase(acct->messages.begin() + static_cast<std::ptrdiff_t>(i));
                }
                std::reverse(acct->deleted.end() - static_cast<std::ptrdiff_t>(
                                                      std::count(marked.begin(), marked.end(), true)),
                             acct->deleted.end());
                acct->locked = false;
                acct = nullptr;
                authorized = false;
            }
            stalled = true;  // nothing after QUIT is answered
            if (was_authorized && faults->quit_drop == fault_plan::quit_drop::after_commit) {
                close();
                return;
            }
            return send(at, "+OK bye\r\n", true);
        }
        if (cmd == "NOOP") return send(at, authorized ? "+OK\r\n" : "-ERR not logged in\r\n");

        if (!authorized) {
            if (cmd == "USER" && o.user && args.size() == 2) {
                pending_user = args[1];
                return send(at, "+OK\r\n");
            }
            if (cmd == "PASS" && !pending_user.empty()) {
                const std::string pass = line.size() > 5 ? line.substr(5) : std::string();
                auto it = srv->accounts.find(pending_user);
                if (it == srv->accounts.end() || it->second.password != pass) {
                    pending_user.clear();
                    return send(at, "-ERR [AUTH] invalid user name or password\r\n");
                }
                return login(pending_user, at);
            }
            if (cmd == "APOP" && o.apop && args.size() == 3) {
                auto it = srv->accounts.find(args[1]);
                if (it == srv->accounts.end() || apop_digest(timestamp, it->second.password) != args[2])
                    return send(at, "-ERR [AUTH] authentication failed\r\n");
                return login(args[1], at);
            }
            if (cmd == "AUTH" && args.size() >= 2) return auth(args, at);
            if (cmd == "STLS" && o.tls == server_options::tls_mode::stls && !tls) {
                if (faults->stls_silent) {
                    stalled = true;
                    return send(at, "+OK begin TLS negotiation\r\n");
                }
                upgrade_pending = true;
                return send(at, "+OK begin TLS negotiation\r\n" + faults->stls_inject);
            }
            return send(at, "-ERR not allowed before login\r\n");
        }

        if (cmd == "STAT") {
            std::uint64_t count = 0, octets = 0;
            for (std::size_t i = 0; i < marked.size(); ++i)
                if (!marked[i]) {
                    ++count;
                    octets += acct->messages[i]->content.size();
                }
            return send(at, "+OK " + std::to_string(count) + " " + std::to_string(octets) + "\r\n");
        }
        if (cmd == "LIST" || (cmd == "UIDL" && o.uidl)) {
            const bool uidl = cmd == "UIDL";
            auto entry = [&](std::size_t i) {
                return std::to_string(i + 1) + " " +
                       (uidl ? acct->messages[i]->uid : std::to_string(acct->messages[i]->content.size()));
            };
            if (args.size() >= 2) {
                if (message(args[1]) == nullptr) return send(at, "-ERR no such message\r\n");
                return send(at, "+OK " + entry(std::stoull(args[1]) - 1) + "\r\n");
            }
            std::string r = "+OK\r\n";
            for (std::size_t i = 0; i < marked.size(); ++i)
                if (!marked[i]) r += entry(i) + "\r\n";
            return send(at, r + ".\r\n");
        }
        if (cmd == "RETR" || (cmd == "TOP" && o.top)) {
            const stored_message* m = args.size() >= 2 ? message(args[1]) : nullptr;
            if (m == nullptr) return send(at, "-ERR no such message\r\n");
            highest_accessed = std::max<std::uint64_t>(highest_accessed, std::stoull(args[1]));
            if (cmd == "RETR") return send_retr(at, *message_ptr(args[1]));
            if (args.size() < 3 || args[2].empty() || args[2].find_first_not_of("0123456789") != std::string::npos)
                return send(at, "-ERR bad line count\r\n");
            const std::uint64_t lines = std::stoull(args[2]);
            const std::string_view body = m->stuffed();
            const std::size_t header_end = body.find("\r\n\r\n");
            std::size_t end = header_end == std::string_view::npos ? body.size() : header_end + 4;
            for (std::uint64_t k = 0; k < lines && end < body.size(); ++k) {
                const std::size_t lf = body.find('\n', end);
                end = lf == std::string_view::npos ? body.size() : lf + 1;
            }
            return send(at, "+OK\r\n" + std::string(body.substr(0, end)) + ".\r\n");
        }
        if (cmd == "DELE") {
            if (args.size() < 2 || message(args[1]) == nullptr) return send(at, "-ERR no such message\r\n");
            const std::uint64_t n = std::stoull(args[1]);
            marked[n - 1] = true;
            return send(at, "+OK message " + args[1] + " deleted\r\n");
        }
        if (cmd == "RSET") {
            marked.assign(marked.size(), false);
            highest_accessed = 0;
            return send(at, "+OK\r\n");
        }
        if (cmd == "LAST" && o.last) return send(at, "+OK " + std::to_string(highest_accessed) + "\r\n");
        send(at, "-ERR unknown command\r\n");
    }
};

void server::impl::wake_at(clock::time_point at, std::weak_ptr<connection> c) {
    const bool sooner = line.empty() || at < line.top().at;
    line.push({at, std::move(c)});
    if (!line_running) {
        line_running = true;
        asio::co_spawn(ex, run_line(), asio::detached);
    } else if (sooner) {
        line_timer.cancel();  // the line sleeps until a later time
    }
}

asio::awaitable<void> server::impl::run_line() {
    auto self = shared_from_this();
    while (!line.empty()) {
        const auto now = clock::now();
        if (!due(line.top().at, now)) {
            line_timer.expires_at(line.top().at);
            co_await line_timer.async_wait(use_tuple);
            continue;
        }
        auto c = line.top().c.lock();
        line.pop();
        if (c) c->woken();
    }
    line_running = false;
}

asio::awaitable<void> server::impl::accept_loop() {
    auto self = shared_from_this();
    while (running) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (!running) break;
        if (ec) {
            if (ec == asio::error::operation_aborted) break;
            continue;  // EMFILE and the like: keep serving the others
        }
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto c = std::make_shared<connection>(self, std::move(socket), ++next_connection_id);
        asio::co_spawn(ex, c->reader(), asio::detached);
    }
}

server::server(asio::any_io_executor ex, server_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

server::~server() { stop(); }

void server::add_account(const std::string& user, const std::string& password, std::vector<std::string> messages,
                         std::optional<fault_plan> faults) {
    account a;
    a.password = password;
    a.faults = std::move(faults);
    a.messages.reserve(messages.size());
    for (auto& m : messages) {
        auto s = std::make_shared<stored_message>();
        s->uid = make_uid(m);
        s->retr_reply = "+OK " + std::to_string(m.size()) + " octets\r\n" + stuff(m) + ".\r\n";
        s->content = std::move(m);
        a.messages.push_back(std::move(s));
    }
    impl_->accounts[user] = std::move(a);
}

error_code server::start() {
    error_code ec;
    const auto address = asio::ip::make_address(impl_->options.address, ec);
    if (ec) return ec;
    const tcp::endpoint ep(address, impl_->options.port);
    impl_->acceptor.open(ep.protocol(), ec);
    if (ec) return ec;
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    impl_->acceptor.bind(ep, ec);
    if (ec) return ec;
    impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return ec;
    impl_->running = true;
    asio::co_spawn(impl_->ex, impl_->accept_loop(), asio::detached);
    return {};
}

void server::stop() {
    impl_->running = false;
    error_code ignored;
    impl_->acceptor.close(ignored);
    for (connection* c : std::vector<connection*>(impl_->live.begin(), impl_->live.end())) c->close();
}

unsigned short server::port() const noexcept {
    error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}
const server_options& server::options() const noexcept { return impl_->options; }
server_stats server::stats() const { return impl_->stats; }

std::vector<std::string> server::messages(const std::string& user) const {
    std::vector<std::string> out;
    auto it = impl_->accounts.find(user);
    if (it != impl_->accounts.end())
        for (const auto& m : it->second.messages) out.push_back(m->content);
    return out;
}

std::vector<std::string> server::uids(const std::string& user) const {
    std::vector<std::string> out;
    auto it = impl_->accounts.find(user);
    if (it != impl_->accounts.end())
        for (const auto& m : it->second.messages) out.push_back(m->uid);
    return out;
}

std::vector<std::string> server::deleted(const std::string& user) const {
    auto it = impl_->accounts.find(user);
    std::vector<std::string> out;
    if (it != impl_->accounts.end())
        for (const auto& m : it->second.deleted) out.push_back(m->content);
    return out;
}

const std::string& server::certificate_pem() const noexcept { return impl_->identity.certificate_pem; }

std::shared_ptr<ssl::context> server::client_tls_context() const {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->add_certificate_authority(asio::buffer(impl_->identity.certificate_pem));
    return ctx;
}

}  // namespace pop3::testing
