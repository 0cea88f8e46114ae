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

}  // namespace pop3::testing::detail

#endif
