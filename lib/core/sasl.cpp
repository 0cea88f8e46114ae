#include <pop3/command.hpp>
#include <pop3/sasl.hpp>

#include "tokens.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace pop3 {

// ---------------------------------------------------------------------------
// base64

namespace {
constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int decode_char(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const auto n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += alphabet[n & 63];
    }
    if (i + 1 == bytes.size()) {
        const auto n = static_cast<unsigned char>(bytes[i]) << 16;
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += "==";
    } else if (i + 2 == bytes.size()) {
        const auto n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text, std::size_t max) {
    if (!is_base64(text) || text.size() / 4 * 3 > max + 2) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        for (int k = 0; k < 4; ++k) v[k] = text[i + k] == '=' ? 0 : decode_char(text[i + k]);
        const unsigned n = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                           (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
        out += static_cast<char>((n >> 16) & 0xFF);
        if (text[i + 2] != '=') out += static_cast<char>((n >> 8) & 0xFF);
        if (text[i + 3] != '=') out += static_cast<char>(n & 0xFF);
    }
    if (out.size() > max) return std::nullopt;
    return out;
}

// ---------------------------------------------------------------------------
// Names and policy

std::string_view mechanism_name(auth_mechanism m) noexcept {
    switch (m) {
    case auth_mechanism::automatic: return "AUTO";
    case auth_mechanism::user_pass: return "USER";
    case auth_mechanism::apop: return "APOP";
    case auth_mechanism::plain: return "PLAIN";
    case auth_mechanism::login: return "LOGIN";
    case auth_mechanism::cram_md5: return "CRAM-MD5";
    case auth_mechanism::scram_sha_1: return "SCRAM-SHA-1";
    case auth_mechanism::scram_sha_256: return "SCRAM-SHA-256";
    case auth_mechanism::xoauth2: return "XOAUTH2";
    case auth_mechanism::oauthbearer: return "OAUTHBEARER";
    case auth_mechanism::external: return "EXTERNAL";
    }
    return "?";
}

std::optional<auth_mechanism> parse_mechanism(std::string_view name) noexcept {
    static constexpr auth_mechanism all[] = {
        auth_mechanism::user_pass,     auth_mechanism::apop,    auth_mechanism::plain,
        auth_mechanism::login,         auth_mechanism::cram_md5, auth_mechanism::scram_sha_1,
        auth_mechanism::scram_sha_256, auth_mechanism::xoauth2, auth_mechanism::oauthbearer,
        auth_mechanism::external};
    if (detail::iequals(name, "auto")) return auth_mechanism::automatic;
    for (auto m : all)
        if (detail::iequals(name, mechanism_name(m))) return m;
    return std::nullopt;
}

bool sends_cleartext_secret(auth_mechanism m) noexcept {
    return m == auth_mechanism::user_pass || m == auth_mechanism::plain || m == auth_mechanism::login ||
           m == auth_mechanism::xoauth2 || m == auth_mechanism::oauthbearer;
}

error_code check_credentials(const credentials& c) noexcept {
    for (std::string_view s : {std::string_view(c.user), std::string_view(c.password), std::string_view(c.authzid)})
        for (char ch : s)
            if (ch == '\r' || ch == '\n' || ch == '\0') return error::argument_has_forbidden_char;
    return {};
}

namespace {

bool offered(auth_mechanism m, const auth_context& ctx) {
    const capabilities* caps = ctx.caps;
    switch (m) {
    case auth_mechanism::user_pass:
        return caps == nullptr || caps->user;  // without CAPA, USER is the RFC 1939 baseline
    case auth_mechanism::apop:
        return ctx.apop_timestamp;
    default:
        return caps != nullptr && caps->has_sasl(mechanism_name(m));
    }
}

bool usable(auth_mechanism m, const credentials& c) {
    switch (m) {
    case auth_mechanism::xoauth2:
    case auth_mechanism::oauthbearer:
        return static_cast<bool>(c.oauth_token);
    case auth_mechanism::external:
        return c.client_certificate;
    default:
        return !c.password.empty();  // password mechanisms need a password
    }
}

}  // namespace

error_code choose_mechanism(const credentials& c, const auth_context& ctx, auth_mechanism& chosen) {
    if (auto ec = check_credentials(c)) return ec;
    auto cleartext_ok = [&](auth_mechanism m) { return ctx.tls || ctx.allow_plaintext || !sends_cleartext_secret(m); };
    if (c.mechanism != auth_mechanism::automatic) {
        if (!offered(c.mechanism, ctx)) return error::mechanism_not_offered;
        if (!cleartext_ok(c.mechanism)) return error::plaintext_auth_refused;
        chosen = c.mechanism;
        return {};
    }
    static constexpr auth_mechanism strongest_first[] = {
        auth_mechanism::external,    auth_mechanism::oauthbearer, auth_mechanism::xoauth2,
        auth_mechanism::scram_sha_256, auth_mechanism::scram_sha_1, auth_mechanism::cram_md5,
        auth_mechanism::apop,        auth_mechanism::plain,       auth_mechanism::login,
        auth_mechanism::user_pass};
    bool only_cleartext_left = false;
    for (auth_mechanism m : strongest_first) {
        if (!offered(m, ctx) || !usable(m, c)) continue;
        if (m == auth_mechanism::apop && !ctx.tls) continue;  // never chosen automatically without TLS
        if (!cleartext_ok(m)) {
            only_cleartext_left = true;
            continue;
        }
        chosen = m;
        return {};
    }
    return only_cleartext_left ? error::plaintext_auth_refused : error::mechanism_not_offered;
}

// ---------------------------------------------------------------------------
// Primitives

namespace {
const EVP_MD* digest(auth_mechanism m) {
    switch (m) {
    case auth_mechanism::scram_sha_1: return EVP_sha1();
    case auth_mechanism::cram_md5: return EVP_md5();
    default: return EVP_sha256();
    }
}
}  // namespace

std::string hmac(auth_mechanism m, std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(digest(m), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
             data.size(), out, &len) == nullptr)
        throw std::runtime_error("pop3: OpenSSL HMAC failed");
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string hash(auth_mechanism m, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out, &len, digest(m), nullptr) != 1)
        throw std::runtime_error("pop3: OpenSSL digest failed");
    return std::string(reinterpret_cast<char*>(out), len);
}

scram_keys scram_derive(auth_mechanism m, std::string_view password, std::string_view salt, unsigned iterations) {
    scram_keys k;
    k.salted_password.resize(static_cast<std::size_t>(EVP_MD_get_size(digest(m))));
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                          static_cast<int>(iterations), digest(m), static_cast<int>(k.salted_password.size()),
                          reinterpret_cast<unsigned char*>(k.salted_password.data())) != 1)
        throw std::runtime_error("pop3: OpenSSL PBKDF2 failed");
    k.client_key = hmac(m, k.salted_password, "Client Key");
    k.stored_key = hash(m, k.client_key);
    k.server_key = hmac(m, k.salted_password, "Server Key");
    return k;
}

// ---------------------------------------------------------------------------
// Mechanisms

namespace {

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

class plain_client final : public sasl_client {
public:
    explicit plain_client(const credentials& c) : c_(c) {}
    std::string_view name() const noexcept override { return "PLAIN"; }
    std::optional<std::string> start() override {
        return c_.authzid + std::string(1, '\0') + c_.user + std::string(1, '\0') + c_.password;
    }
    error_code step(std::string_view, std::string&) override { return error::sasl_bad_challenge; }

private:
    credentials c_;
};

class login_client final : public sasl_client {
public:
    explicit login_client(const credentials& c) : c_(c) {}
    std::string_view name() const noexcept override { return "LOGIN"; }
    std::optional<std::string> start() override { return std::nullopt; }
    error_code step(std::string_view, std::string& response) override {
        // The prompts' words vary between servers: answer by position.
        switch (step_++) {
        case 0: response = c_.user; return {};
        case 1: response = c_.password; return {};
        default: return error::sasl_bad_challenge;
        }
    }

private:
    credentials c_;
    int step_ = 0;
};

class cram_md5_client final : public sasl_client {
public:
    explicit cram_md5_client(const credentials& c) : c_(c) {}
    std::string_view name() const noexcept override { return "CRAM-MD5"; }
    std::optional<std::string> start() override { return std::nullopt; }
    error_code step(std::string_view challenge, std::string& response) override {
        if (done_ || challenge.empty()) return error::sasl_bad_challenge;
        done_ = true;
        response = c_.user + " " + hex(hmac(auth_mechanism::cram_md5, c_.password, challenge));
        return {};
    }

private:
    credentials c_;
    bool done_ = false;
};

/// XOAUTH2 and OAUTHBEARER: a bearer token; a challenge means failure (the
/// server's JSON error), answered so the server can send its -ERR.
class oauth_client final : public sasl_client {
public:
    oauth_client(auth_mechanism m, const credentials& c, std::string token)
        : m_(m), user_(c.user), token_(std::move(token)) {}
    std::string_view name() const noexcept override { return mechanism_name(m_); }
    std::optional<std::string> start() override {
        if (m_ == auth_mechanism::xoauth2) return "user=" + user_ + "\x01" "auth=Bearer " + token_ + "\x01\x01";
        return "n,a=" + user_ + ",\x01" "auth=Bearer " + token_ + "\x01\x01";
    }
    error_code step(std::string_view, std::string& response) override {
        if (++challenges_ > 1) return error::sasl_bad_challenge;
        // RFC 7628 section 3.2.3: a failed OAUTHBEARER is answered with %x01;
        // XOAUTH2 with an empty response.
        response = m_ == auth_mechanism::oauthbearer ? std::string("\x01") : std::string();
        return {};
    }

private:
    auth_mechanism m_;
    std::string user_, token_;
    int challenges_ = 0;
};

class external_client final : public sasl_client {
public:
    explicit external_client(const credentials& c) : authzid_(c.authzid) {}
    std::string_view name() const noexcept override { return "EXTERNAL"; }
    std::optional<std::string> start() override { return authzid_; }
    error_code step(std::string_view, std::string&) override { return error::sasl_bad_challenge; }

private:
    std::string authzid_;
};

// RFC 5802 saslname: "," and "=" escaped.
std::string saslname(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == ',') out += "=2C";
        else if (c == '=') out += "=3D";
        else out += c;
    }
    return out;
}

// The value of attribute `key` ("r", "s", "i", "v", "e") in a SCRAM message.
std::optional<std::string_view> attribute(std::string_view message, char key) {
    std::size_t pos = 0;
    while (pos <= message.size()) {
        const std::size_t comma = message.find(',', pos);
        const std::string_view part = message.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        if (part.size() >= 2 && part[0] == key && part[1] == '=') return part.substr(2);
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return std::nullopt;
}

class scram_client final : public sasl_client {
public:
    /// A malicious server must not make the client spin: PBKDF2 rounds above
    /// this are refused.
    static constexpr unsigned max_iterations = 1'000'000;

    scram_client(auth_mechanism m, const credentials& c, std::string nonce)
        : m_(m), c_(c), nonce_(std::move(nonce)) {
        if (nonce_.empty()) {
            unsigned char random[18];
            if (RAND_bytes(random, sizeof random) != 1) throw std::runtime_error("pop3: no randomness for SCRAM");
            nonce_ = base64_encode(std::string_view(reinterpret_cast<char*>(random), sizeof random));
        }
        gs2_ = "n," + (c_.authzid.empty() ? std::string() : "a=" + saslname(c_.authzid)) + ",";
        first_bare_ = "n=" + saslname(c_.user) + ",r=" + nonce_;
    }
    std::string_view name() const noexcept override { return mechanism_name(m_); }
    std::optional<std::string> start() override { return gs2_ + first_bare_; }

    error_code step(std::string_view challenge, std::string& response) override {
        if (stage_ == 0) return server_first(challenge, response);
        if (stage_ == 1) return server_final(challenge, response);
        return error::sasl_bad_challenge;
    }

    error_code finish() override { return verified_ ? error_code{} : error_code(error::server_signature_mismatch); }

private:
    error_code server_first(std::string_view msg, std::string& response) {
        stage_ = 1;
        if (attribute(msg, 'm')) return error::sasl_bad_challenge;  // mandatory extension: unsupported
        const auto r = attribute(msg, 'r');
        const auto s = attribute(msg, 's');
        const auto i = attribute(msg, 'i');
        if (!r || !s || !i || r->size() <= nonce_.size() || r->substr(0, nonce_.size()) != nonce_)
            return error::sasl_bad_challenge;
        const auto salt = base64_decode(*s, 1024);
        std::uint64_t iterations = 0;
        if (!salt || !detail::all_digits(*i) || i->size() > 9) return error::sasl_bad_challenge;
        for (char ch : *i) iterations = iterations * 10 + static_cast<unsigned>(ch - '0');
        if (iterations == 0 || iterations > max_iterations) return error::sasl_bad_challenge;

        const std::string without_proof = "c=" + base64_encode(gs2_) + ",r=" + std::string(*r);
        const std::string auth_message = first_bare_ + "," + std::string(msg) + "," + without_proof;
        const scram_keys k = scram_derive(m_, c_.password, *salt, static_cast<unsigned>(iterations));
        const std::string signature = hmac(m_, k.stored_key, auth_message);
        std::string proof = k.client_key;
        for (std::size_t n = 0; n < proof.size(); ++n) proof[n] = static_cast<char>(proof[n] ^ signature[n]);
        server_signature_ = hmac(m_, k.server_key, auth_message);
        response = without_proof + ",p=" + base64_encode(proof);
        return {};
    }

    error_code server_final(std::string_view msg, std::string& response) {
        stage_ = 2;
        const auto v = attribute(msg, 'v');
        if (!v) return error::server_signature_mismatch;  // "e=..." or nothing
        const auto decoded = base64_decode(*v, 128);
        if (!decoded || *decoded != server_signature_) return error::server_signature_mismatch;
        verified_ = true;
        response.clear();  // RFC 5034: an empty response, then the server's +OK
        return {};
    }

    auth_mechanism m_;
    credentials c_;
    std::string nonce_, gs2_, first_bare_, server_signature_;
    int stage_ = 0;
    bool verified_ = false;
};

}  // namespace

std::unique_ptr<sasl_client> make_sasl_client(auth_mechanism m, const credentials& c, std::string token,
                                              std::string nonce) {
    switch (m) {
    case auth_mechanism::plain: return std::make_unique<plain_client>(c);
    case auth_mechanism::login: return std::make_unique<login_client>(c);
    case auth_mechanism::cram_md5: return std::make_unique<cram_md5_client>(c);
    case auth_mechanism::scram_sha_1:
    case auth_mechanism::scram_sha_256: return std::make_unique<scram_client>(m, c, std::move(nonce));
    case auth_mechanism::xoauth2:
    case auth_mechanism::oauthbearer: return std::make_unique<oauth_client>(m, c, std::move(token));
    case auth_mechanism::external: return std::make_unique<external_client>(c);
    default: return nullptr;  // USER/PASS and APOP are not SASL
    }
}

}  // namespace pop3
