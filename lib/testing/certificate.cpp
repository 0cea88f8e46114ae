#include "certificate.hpp"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace pop3::testing::detail {
namespace {

template <class T, void (*Free)(T*)>
struct deleter {
    void operator()(T* p) const noexcept { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, deleter<BIO, BIO_free_all>>;

void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("pop3::testing: OpenSSL failed to ") + what);
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

namespace {

pkey_ptr read_key(const std::string& pem) {
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return pkey_ptr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

x509_ptr read_certificate(const std::string& pem) {
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return x509_ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Issues a certificate for a fresh key; self-signed when issuer is null.
key_and_certificate issue(const std::string& common_name, const std::vector<std::string>& dns_names,
                          const std::vector<std::string>& ip_addresses, long not_before, long not_after, bool ca,
                          const key_and_certificate* issuer) {
    pkey_ptr key(EVP_EC_gen("P-256"));
    check(key != nullptr, "generate a key");
    x509_ptr cert(X509_new());
    check(cert != nullptr, "allocate a certificate");
    X509_set_version(cert.get(), 2);
    unsigned char serial_bytes[16];
    RAND_bytes(serial_bytes, sizeof serial_bytes);
    serial_bytes[0] &= 0x7F;
    BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
    BN_free(serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after);
    X509_set_pubkey(cert.get(), key.get());

    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("pop3 test server"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);

    x509_ptr issuer_cert;
    pkey_ptr issuer_key;
    if (issuer != nullptr) {
        issuer_cert = read_certificate(issuer->certificate_pem);
        issuer_key = read_key(issuer->key_pem);
        check(issuer_cert && issuer_key, "read the issuer");
        X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert.get()));
    } else {
        X509_set_issuer_name(cert.get(), name);
    }

    std::string san;
    for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
    for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
    X509* signer = issuer_cert ? issuer_cert.get() : cert.get();
    auto add = [&](int nid, const std::string& value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
        check(ext != nullptr, "build a certificate extension");
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    };
    if (!san.empty()) add(NID_subject_alt_name, san);
    add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add(NID_key_usage, ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature");
    add(NID_subject_key_identifier, "hash");
    if (issuer_cert) add(NID_authority_key_identifier, "keyid:always");

    check(X509_sign(cert.get(), issuer_key ? issuer_key.get() : key.get(), EVP_sha256()) > 0, "sign");

    key_and_certificate out;
    bio_ptr key_bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "write the key");
    out.key_pem = bio_text(key_bio.get());
    bio_ptr cert_bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_X509(cert_bio.get(), cert.get()) == 1, "write the certificate");
    out.certificate_pem = bio_text(cert_bio.get());
    return out;
}

}  // namespace

key_and_certificate make_self_signed(const std::vector<std::string>& dns_names,
                                     const std::vector<std::string>& ip_addresses, int valid_days) {
    const std::string cn = dns_names.empty() ? "pop3 test server" : dns_names.front();
    return issue(cn, dns_names, ip_addresses, -3600, static_cast<long>(valid_days) * 86400, true, nullptr);
}

key_and_certificate make_ca(const std::string& name) { return issue(name, {}, {}, -3600, 86400, true, nullptr); }

key_and_certificate make_leaf(const key_and_certificate& ca, const std::vector<std::string>& dns_names,
                              const std::vector<std::string>& ip_addresses, long not_before_seconds,
                              long not_after_seconds) {
    const std::string cn = dns_names.empty() ? "pop3 test leaf" : dns_names.front();
    return issue(cn, dns_names, ip_addresses, not_before_seconds, not_after_seconds, false, &ca);
}

}  // namespace pop3::testing::detail
