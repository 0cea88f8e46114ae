#include <pop3/command.hpp>

#include <array>
#include <charconv>

#include "tokens.hpp"

namespace pop3 {
namespace {

// What an argument position accepts.
enum class arg_rule : unsigned char {
    word,          // no spaces, RFC length limit
    phrase,        // spaces allowed (PASS), RFC length limit
    number,        // decimal, at least 1
    count,         // decimal, 0 allowed (TOP's line count)
    initial_resp,  // base64 or "="; bounded by the command limit only (RFC 5034)
};

struct command_spec {
    std::string_view keyword;
    unsigned char min_args;
    unsigned char max_args;
    arg_rule rules[2];
};

const command_spec& spec(command_kind kind) noexcept {
    using r = arg_rule;
    static constexpr std::array<command_spec, 18> table{{  // in command_kind order
        {"USER", 1, 1, {r::word, r::word}},
        {"PASS", 1, 1, {r::phrase, r::word}},
        {"APOP", 2, 2, {r::word, r::word}},
        {"AUTH", 1, 2, {r::word, r::initial_resp}},
        {"STAT", 0, 0, {r::word, r::word}},
        {"LIST", 0, 1, {r::number, r::word}},
        {"RETR", 1, 1, {r::number, r::word}},
        {"DELE", 1, 1, {r::number, r::word}},
        {"NOOP", 0, 0, {r::word, r::word}},
        {"RSET", 0, 0, {r::word, r::word}},
        {"QUIT", 0, 0, {r::word, r::word}},
        {"TOP", 2, 2, {r::number, r::count}},
        {"UIDL", 0, 1, {r::number, r::word}},
        {"CAPA", 0, 0, {r::word, r::word}},
        {"STLS", 0, 0, {r::word, r::word}},
        {"UTF8", 0, 0, {r::word, r::word}},
        {"LANG", 0, 1, {r::word, r::word}},
        {"LAST", 0, 0, {r::word, r::word}},
    }};
    return table[static_cast<std::size_t>(kind)];
}

error_code check_argument(std::string_view arg, arg_rule rule, const encode_options& options) {
    for (char c : arg)
        if (c == '\r' || c == '\n' || c == '\0') return error::argument_has_forbidden_char;
    if (arg.empty()) return error::argument_empty;
    switch (rule) {
    case arg_rule::number:
        if (!detail::all_digits(arg) || arg.find_first_not_of('0') == std::string_view::npos)
            return error::invalid_message_number;
        break;
    case arg_rule::count:
        if (!detail::all_digits(arg)) return error::invalid_message_number;
        break;
    case arg_rule::initial_resp:
        if (arg != "=" && !is_base64(arg)) return error::invalid_sasl_response;
        return {};  // only the command limit applies
    case arg_rule::word:
        if (arg.find(' ') != std::string_view::npos) return error::argument_has_space;
        break;
    case arg_rule::phrase:
        break;
    }
    if (!options.allow_long_arguments && arg.size() > rfc_max_argument)
        return error::argument_too_long;
    return {};
}

}  // namespace

std::string_view keyword(command_kind kind) noexcept { return spec(kind).keyword; }

reply_shape shape_of(command_kind kind, std::size_t argument_count) noexcept {
    switch (kind) {
    case command_kind::retr:
    case command_kind::top:
    case command_kind::capa:
        return reply_shape::multi_line;
    case command_kind::list:
    case command_kind::uidl:
    case command_kind::lang:
        return argument_count == 0 ? reply_shape::multi_line : reply_shape::single_line;
    case command_kind::auth:
        return reply_shape::sasl;
    default:
        return reply_shape::single_line;
    }
}

bool carries_secret(command_kind kind) noexcept {
    return kind == command_kind::pass || kind == command_kind::auth;
}

bool is_base64(std::string_view s) noexcept {
    if (s.size() % 4 != 0) return false;
    std::size_t padding = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '=') {
            ++padding;
            continue;
        }
        if (padding != 0) return false;  // data after padding
        const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                           (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!alpha) return false;
    }
    return padding <= 2;
}

error_code encode_command(std::string& out, command_kind kind,
                          std::span<const std::string_view> args,
                          const encode_options& options) {
    const command_spec& s = spec(kind);
    if (args.size() < s.min_args || args.size() > s.max_args) return error::wrong_argument_count;
    std::size_t length = s.keyword.size() + 2;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (auto ec = check_argument(args[i], s.rules[i], options)) return ec;
        length += 1 + args[i].size();
    }
    const std::size_t limit = options.allow_long_arguments ? hard_max_command : rfc_max_command;
    if (length > limit) return error::command_too_long;
    out.reserve(out.size() + length);
    out += s.keyword;
    for (auto arg : args) {
        out += ' ';
        out += arg;
    }
    out += "\r\n";
    return {};
}

error_code encode_command(std::string& out, command_kind kind,
                          std::initializer_list<std::string_view> args,
                          const encode_options& options) {
    return encode_command(out, kind, std::span<const std::string_view>(args.begin(), args.size()),
                          options);
}

namespace {
std::string_view to_decimal(std::uint64_t n, std::array<char, 24>& buf) noexcept {
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), n);
    (void)ec;  // 24 octets always hold a 64-bit number
    return {buf.data(), static_cast<std::size_t>(end - buf.data())};
}
}  // namespace

error_code encode_command(std::string& out, command_kind kind, std::uint64_t message) {
    std::array<char, 24> buf;
    const std::string_view args[] = {to_decimal(message, buf)};
    return encode_command(out, kind, std::span<const std::string_view>(args));
}

error_code encode_top(std::string& out, std::uint64_t message, std::uint64_t lines) {
    std::array<char, 24> a, b;
    const std::string_view args[] = {to_decimal(message, a), to_decimal(lines, b)};
    return encode_command(out, command_kind::top, std::span<const std::string_view>(args));
}

error_code encode_sasl_response(std::string& out, std::string_view base64) {
    if (base64 != "*" && !is_base64(base64)) {
        for (char c : base64)
            if (c == '\r' || c == '\n' || c == '\0') return error::argument_has_forbidden_char;
        return error::invalid_sasl_response;
    }
    if (base64.size() + 2 > hard_max_command) return error::command_too_long;
    out.reserve(out.size() + base64.size() + 2);
    out += base64;
    out += "\r\n";
    return {};
}

}  // namespace pop3
