#include "tcp_streams.hpp"

#include <pop3/session_options.hpp>
#include <pop3/tls_session_cache.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <pop3/sasl.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <iterator>
#include <list>
#include <mutex>
#include <unordered_map>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace pop3 {

std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_options& options) {
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    if (options.insecure_skip_verification) {
        ctx->set_verify_mode(ssl::verify_none);
        return ctx;
    }
    ctx->set_verify_mode(ssl::verify_peer);
    if (!options.ca_file.empty())
        ctx->load_verify_file(options.ca_file);
    else if (!options.ca_dir.empty())
        ctx->add_verify_path(options.ca_dir);
    else
        ctx->set_default_verify_paths();
    return ctx;
}

namespace {
std::string spki_pin(X509* cert) {
    unsigned char* der = nullptr;
    const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (len <= 0) return {};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(der, static_cast<std::size_t>(len), md, &md_len, EVP_sha256(), nullptr);
    OPENSSL_free(der);
    return base64_encode(std::string_view(reinterpret_cast<char*>(md), md_len));
}
}  // namespace

std::string public_key_pin(const std::string& certificate_pem) {
    BIO* bio = BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr) return {};
    std::string pin = spki_pin(cert);
    X509_free(cert);
    return pin;
}

namespace detail {

error_code check_pins(SSL* ssl, const std::vector<std::string>& pins) {
    if (pins.empty()) return {};
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) return error::certificate_pin_mismatch;
    const std::string pin = spki_pin(cert);
    X509_free(cert);
    for (const auto& p : pins)
        if (p == pin) return {};
    return error::certificate_pin_mismatch;
}

void tcp_quickack(int native_handle) noexcept {
#ifdef TCP_QUICKACK
    int one = 1;
    ::setsockopt(native_handle, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
    (void)native_handle;
#endif
}

std::size_t tls_read_buffered(SSL* ssl, void* data, std::size_t size, error_code& ec) noexcept {
    // Asio's TLS stream keeps no state between its operations but OpenSSL's
    // and the BIO pair's, so reading here is what its next read would do,
    // minus the trip through the executor. Only where that read could not
    // need to send: TLS 1.3 has no renegotiation, and what it may queue to
    // send (a KeyUpdate answer) leaves with the next write, ahead of it, as
    // RFC 8446 asks. The end of the stream is left for Asio's next read to
    // find (OpenSSL keeps saying so); a failed record is reported as Asio
    // would report it, since OpenSSL says it only once.
    ec = {};
    if (ssl == nullptr || SSL_version(ssl) != TLS1_3_VERSION || SSL_is_init_finished(ssl) != 1) return 0;
    BIO* out = SSL_get_wbio(ssl);
    const std::size_t queued = out != nullptr ? BIO_ctrl_wpending(out) : 0;
    auto* p = static_cast<unsigned char*>(data);
    std::size_t total = 0;
    ERR_clear_error();  // once: a read that succeeds leaves nothing queued
    while (total < size) {
        std::size_t got = 0;
        if (SSL_read_ex(ssl, p + total, size - total, &got) != 1) {
            const int why = SSL_get_error(ssl, 0);
            if (why == SSL_ERROR_SSL || why == SSL_ERROR_SYSCALL) {
                const unsigned long code = ERR_get_error();
                ec = code != 0 ? error_code(static_cast<int>(code), boost::asio::error::get_ssl_category())
                               : error_code(boost::asio::ssl::error::unspecified_system_error);
            }
            break;
        }
        total += got;
        if (out != nullptr && BIO_ctrl_wpending(out) != queued) break;
    }
    ERR_clear_error();
    return total;
}

bool tcp_low_water(int native_handle, std::size_t octets) noexcept {
#if defined(__linux__) && defined(SO_RCVLOWAT)
    const int value = static_cast<int>(std::min<std::size_t>(std::max<std::size_t>(octets, 1), 1u << 30));
    return ::setsockopt(native_handle, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof value) == 0;
#else
    (void)native_handle;
    (void)octets;
    return false;
#endif
}

void set_tcp_options(boost::asio::ip::tcp::socket& socket) noexcept {
    error_code ignored;
    socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
}

error_code prepare_client_tls(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& stream,
                              const std::string& server_name) {
    SSL* ssl = stream.native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    error_code ec;
    boost::asio::ip::make_address(server_name, ec);
    if (!ec) {
        // An IP literal: no SNI (RFC 6066), and the certificate must carry the address.
        if (X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str()) != 1)
            return boost::asio::error::invalid_argument;
        return {};
    }
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size()) != 1 ||
        SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1)
        return boost::asio::error::invalid_argument;
    return {};
}

namespace {

// A number for each TLS context, never reused (an address can be, once a
// context is gone): a session verified under one context's trust is never
// offered under another's.
std::uint64_t context_id(SSL_CTX* ctx) {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    static std::mutex mutex;
    static std::uint64_t next = 0;
    std::lock_guard<std::mutex> lock(mutex);
    auto id = reinterpret_cast<std::uintptr_t>(SSL_CTX_get_ex_data(ctx, index));
    if (id == 0) {
        id = ++next;
        SSL_CTX_set_ex_data(ctx, index, reinterpret_cast<void*>(id));
    }
    return id;
}

}  // namespace

std::string tls_session_key(SSL* ssl, const std::string& server_name, const std::string& port,
                            const std::vector<std::string>& pins) {
    std::string key = server_name;
    key += '\n';
    key += port;
    key += '\n';
    key += std::to_string(context_id(SSL_get_SSL_CTX(ssl)));
    for (const auto& p : pins) {
        key += '\n';
        key += p;
    }
    return key;
}

void offer_tls_session(SSL* ssl, const tls_session_cache& cache, const std::string& key) {
    if (SSL_SESSION* s = cache.find(key)) {
        SSL_set_session(ssl, s);  // takes a reference of its own
        SSL_SESSION_free(s);
    }
}

}  // namespace detail
}  // namespace pop3

// ---------------------------------------------------------------------------
// tls_session_cache

namespace pop3 {

struct tls_session_cache::impl {
    struct entry {
        SSL_SESSION* session;
        std::list<std::string>::iterator age;
    };
    std::size_t capacity;
    mutable std::mutex mutex;
    std::unordered_map<std::string, entry> entries;
    std::list<std::string> ages;  // oldest first

    void drop(std::unordered_map<std::string, entry>::iterator it) {
        SSL_SESSION_free(it->second.session);
        ages.erase(it->second.age);
        entries.erase(it);
    }
};

tls_session_cache::tls_session_cache(std::size_t capacity) : impl_(std::make_unique<impl>()) {
    impl_->capacity = capacity == 0 ? 1 : capacity;
}

tls_session_cache::~tls_session_cache() {
    for (auto& [key, e] : impl_->entries) SSL_SESSION_free(e.session);
}

SSL_SESSION* tls_session_cache::find(const std::string& key) const {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->entries.find(key);
    if (it == impl_->entries.end()) return nullptr;
    // Each connection gets a copy of its own: OpenSSL may mark the session a
    // connection uses (not resumable, when it ends without close_notify),
    // and connections on other threads may use it at the same time.
    return SSL_SESSION_dup(it->second.session);
}

void tls_session_cache::store(const std::string& key, SSL_SESSION* s) {
    if (s == nullptr || SSL_SESSION_is_resumable(s) != 1) return;
    // A copy: OpenSSL marks a connection's own session not resumable when
    // the connection ends without close_notify (a server that drops the
    // connection after QUIT), which would spoil the one kept here.
    SSL_SESSION* copy = SSL_SESSION_dup(s);
    if (copy == nullptr) return;
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (auto it = impl_->entries.find(key); it != impl_->entries.end()) impl_->drop(it);
    while (impl_->entries.size() >= impl_->capacity) impl_->drop(impl_->entries.find(impl_->ages.front()));
    impl_->ages.push_back(key);
    impl_->entries.emplace(key, impl::entry{copy, std::prev(impl_->ages.end())});
}

void tls_session_cache::erase(const std::string& key) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (auto it = impl_->entries.find(key); it != impl_->entries.end()) impl_->drop(it);
}

std::size_t tls_session_cache::size() const {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    return impl_->entries.size();
}

}  // namespace pop3
