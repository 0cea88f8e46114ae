#include "tcp_streams.hpp"

#include <pop3/session_options.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <pop3/sasl.hpp>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

}  // namespace detail
}  // namespace pop3
