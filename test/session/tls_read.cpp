// The TLS half of read_buffered: the records OpenSSL already holds come out
// in one pass, in order, and nothing else changes (an error or the end of
// the stream stays for the stream's next read to report). Two SSL objects
// over memory BIOs, no sockets: the test moves every byte itself.

#include <pop3/detail/any_stream.hpp>

#include "../../lib/testing/certificate.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <doctest/doctest.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace certs = pop3::testing::detail;
using pop3::detail::tls_read_buffered;

namespace {

template <class T, void (*Free)(T*)>
struct deleter {
    void operator()(T* p) const noexcept { Free(p); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, deleter<SSL_CTX, SSL_CTX_free>>;
using ssl_ptr = std::unique_ptr<SSL, deleter<SSL, SSL_free>>;

// All bytes waiting in one side's write BIO.
std::string drain(SSL* ssl) {
    BIO* out = SSL_get_wbio(ssl);
    std::string bytes;
    char buf[4096];
    int n = 0;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<std::size_t>(n));
    return bytes;
}

void feed(SSL* ssl, std::string_view bytes) {
    if (!bytes.empty()) REQUIRE(BIO_write(SSL_get_rbio(ssl), bytes.data(), static_cast<int>(bytes.size())) > 0);
}

struct tls_pair {
    ctx_ptr server_ctx{SSL_CTX_new(TLS_server_method())};
    ctx_ptr client_ctx{SSL_CTX_new(TLS_client_method())};
    ssl_ptr server;
    ssl_ptr client;

    explicit tls_pair(int max_version = TLS1_3_VERSION) {
        const auto kc = certs::make_self_signed({"localhost"}, {});
        BIO* kb = BIO_new_mem_buf(kc.key_pem.data(), static_cast<int>(kc.key_pem.size()));
        EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
        BIO_free(kb);
        BIO* cb = BIO_new_mem_buf(kc.certificate_pem.data(), static_cast<int>(kc.certificate_pem.size()));
        X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
        BIO_free(cb);
        REQUIRE(key != nullptr);
        REQUIRE(cert != nullptr);
        REQUIRE(SSL_CTX_use_certificate(server_ctx.get(), cert) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey(server_ctx.get(), key) == 1);
        X509_free(cert);
        EVP_PKEY_free(key);
        SSL_CTX_set_max_proto_version(server_ctx.get(), max_version);
        SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_NONE, nullptr);  // only reading is tested here
        server.reset(SSL_new(server_ctx.get()));
        client.reset(SSL_new(client_ctx.get()));
        SSL_set_bio(server.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
        SSL_set_bio(client.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
        SSL_set_accept_state(server.get());
        SSL_set_connect_state(client.get());
    }

    void handshake() {
        for (int round = 0; round < 10; ++round) {
            const int c = SSL_do_handshake(client.get());
            feed(server.get(), drain(client.get()));
            const int s = SSL_do_handshake(server.get());
            feed(client.get(), drain(server.get()));
            if (c == 1 && s == 1) break;
        }
        REQUIRE(SSL_is_init_finished(client.get()) == 1);
        REQUIRE(SSL_is_init_finished(server.get()) == 1);
    }

    // One record per write: each SSL_write of a short string is its own record.
    std::string send_records(int count, std::size_t size, std::string* plain) {
        for (int i = 0; i < count; ++i) {
            const std::string text(size, static_cast<char>('a' + i % 26));
            REQUIRE(SSL_write(server.get(), text.data(), static_cast<int>(text.size())) == static_cast<int>(size));
            *plain += text;
        }
        return drain(server.get());
    }
};

std::string read_buffered(SSL* ssl, std::size_t size, pop3::error_code* error = nullptr) {
    std::string buf(size, '\0');
    pop3::error_code ec = boost::asio::error::would_block;  // must be overwritten
    buf.resize(tls_read_buffered(ssl, buf.data(), buf.size(), ec));
    if (error != nullptr)
        *error = ec;
    else
        CHECK_MESSAGE(!ec, ec.message());
    return buf;
}

}  // namespace

TEST_CASE("TLS 1.3: every record already received comes out in one pass, in order") {
    tls_pair p;
    p.handshake();
    std::string plain;
    feed(p.client.get(), p.send_records(5, 1000, &plain));
    CHECK(read_buffered(p.client.get(), 100000) == plain);
    CHECK(read_buffered(p.client.get(), 100000).empty());  // nothing more, and no error left behind
    CHECK(ERR_peek_error() == 0);
}

TEST_CASE("TLS 1.3: no more than the buffer holds; the rest comes next time") {
    tls_pair p;
    p.handshake();
    std::string plain;
    feed(p.client.get(), p.send_records(5, 1000, &plain));
    const std::string first = read_buffered(p.client.get(), 2500);  // ends inside a record
    CHECK(first == plain.substr(0, 2500));
    CHECK(read_buffered(p.client.get(), 100000) == plain.substr(2500));
}

TEST_CASE("TLS 1.3: a record not yet whole waits for its last octets") {
    for (std::size_t cut : {std::size_t{1}, std::size_t{10}, std::size_t{700}}) {
        CAPTURE(cut);
        tls_pair q;
        q.handshake();
        std::string text;
        const std::string bytes = q.send_records(4, 1000, &text);
        feed(q.client.get(), bytes.substr(0, bytes.size() - cut));
        const std::string got = read_buffered(q.client.get(), 100000);
        CHECK(got == text.substr(0, got.size()));
        CHECK(got.size() == 3000);  // three whole records of four
        feed(q.client.get(), bytes.substr(bytes.size() - cut));
        CHECK(read_buffered(q.client.get(), 100000) == text.substr(3000));
    }
}

TEST_CASE("a damaged record: what came before it, and the error stays for the next read") {
    tls_pair p;
    p.handshake();
    std::string plain;
    std::string wire = p.send_records(4, 1000, &plain);
    wire[wire.size() - 1500] ^= 0x40;  // inside the third record's ciphertext
    feed(p.client.get(), wire);
    pop3::error_code ec;
    const std::string got = read_buffered(p.client.get(), 100000, &ec);
    CHECK(got == plain.substr(0, got.size()));
    CHECK(got.size() == 2000);
    // OpenSSL says why only once: the reason travels in ec, in the category
    // Asio's own read would have used, and the thread's queue is left clean.
    CHECK(ec.category() == boost::asio::error::get_ssl_category());
    CHECK(ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC);
    CHECK(ERR_peek_error() == 0);
    char buf[100];
    CHECK(SSL_read(p.client.get(), buf, sizeof buf) <= 0);  // the connection stays failed
    ERR_clear_error();
}

TEST_CASE("close_notify: the data before it, then the stream's own read sees the end") {
    tls_pair p;
    p.handshake();
    std::string plain;
    std::string wire = p.send_records(2, 1000, &plain);
    SSL_shutdown(p.server.get());
    wire += drain(p.server.get());
    feed(p.client.get(), wire);
    CHECK(read_buffered(p.client.get(), 100000) == plain);
    char buf[100];
    CHECK(SSL_read(p.client.get(), buf, sizeof buf) == 0);
    CHECK(SSL_get_error(p.client.get(), 0) == SSL_ERROR_ZERO_RETURN);
}

TEST_CASE("TLS 1.2 and a handshake not yet done: left to the stream's own reads") {
    {
        tls_pair p(TLS1_2_VERSION);
        p.handshake();
        REQUIRE(SSL_version(p.client.get()) == TLS1_2_VERSION);
        std::string plain;
        feed(p.client.get(), p.send_records(3, 1000, &plain));
        CHECK(read_buffered(p.client.get(), 100000).empty());
        std::string got(3000, '\0');
        std::size_t n = 0, total = 0;
        while (total < got.size() && SSL_read_ex(p.client.get(), got.data() + total, got.size() - total, &n) == 1)
            total += n;
        CHECK(got == plain);  // untouched by the call above
    }
    {
        tls_pair p;
        CHECK(read_buffered(p.client.get(), 100).empty());
        pop3::error_code ec;
        CHECK(tls_read_buffered(nullptr, nullptr, 0, ec) == 0);
        CHECK(!ec);
    }
}
