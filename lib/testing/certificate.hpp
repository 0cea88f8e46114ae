#ifndef POP3_LIB_TESTING_CERTIFICATE_HPP
#define POP3_LIB_TESTING_CERTIFICATE_HPP

// Self-signed certificates made at run time with OpenSSL. Not installed.

#include <string>
#include <vector>

namespace pop3::testing::detail {

struct key_and_certificate {
    std::string key_pem;
    std::string certificate_pem;
};

/// An EC P-256 key and a self-signed certificate for the given DNS names
/// and IP addresses, valid from an hour ago for `valid_days`.
key_and_certificate make_self_signed(const std::vector<std::string>& dns_names,
                                     const std::vector<std::string>& ip_addresses, int valid_days = 2);

/// A certificate authority for tests.
key_and_certificate make_ca(const std::string& name);

/// A server certificate signed by `ca`, valid from `not_before_seconds` to
/// `not_after_seconds` relative to now (negative: in the past).
key_and_certificate make_leaf(const key_and_certificate& ca, const std::vector<std::string>& dns_names,
                              const std::vector<std::string>& ip_addresses, long not_before_seconds = -3600,
                              long not_after_seconds = 86400);

}  // namespace pop3::testing::detail

#endif
