#include <pop3/apop.hpp>

#include <openssl/evp.h>

#include <stdexcept>

namespace pop3 {

error_code find_apop_timestamp(std::string_view greeting, std::string_view& timestamp) noexcept {
    for (std::size_t open = greeting.find('<'); open != std::string_view::npos;
         open = greeting.find('<', open + 1)) {
        std::size_t at = std::string_view::npos;
        bool valid = true;
        std::size_t i = open + 1;
        for (; i < greeting.size() && greeting[i] != '>'; ++i) {
            const auto c = static_cast<unsigned char>(greeting[i]);
            if (c <= 0x20 || c >= 0x7F || c == '<') {
                valid = false;
                break;
            }
            if (c == '@') {
                if (at != std::string_view::npos) valid = false;
                at = i;
            }
        }
        if (!valid || i == greeting.size()) continue;
        if (at == std::string_view::npos || at == open + 1 || at + 1 == i) continue;
        timestamp = greeting.substr(open, i - open + 1);
        return {};
    }
    return error::no_apop_timestamp;
}

std::string apop_digest(std::string_view timestamp, std::string_view secret) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1 &&
                    EVP_DigestUpdate(ctx, timestamp.data(), timestamp.size()) == 1 &&
                    EVP_DigestUpdate(ctx, secret.data(), secret.size()) == 1 &&
                    EVP_DigestFinal_ex(ctx, md, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) throw std::runtime_error("pop3: OpenSSL could not compute MD5 for APOP");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * len);
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0x0F];
    }
    return out;
}

}  // namespace pop3
