#include <pop3/capabilities.hpp>
#include <pop3/line_reader.hpp>
#include <pop3/listing.hpp>

#include "tokens.hpp"

namespace pop3 {

bool capabilities::has(std::string_view name) const noexcept {
    for (const auto& c : all)
        if (detail::iequals(c.name, name)) return true;
    return false;
}

bool capabilities::has_sasl(std::string_view mechanism) const noexcept {
    for (const auto& m : sasl)
        if (detail::iequals(m, mechanism)) return true;
    return false;
}

error_code capabilities::add_line(std::string_view line, const parser_limits& limits) {
    detail::token_cursor cur{line};
    const std::string_view name_token = cur.next();
    if (name_token.empty()) return {};
    if (all.size() >= limits.max_capabilities) return error::too_many_capabilities;

    capability cap;
    cap.name = detail::upper(name_token);
    const std::string_view rest = cur.rest();
    for (std::string_view arg = cur.next(); !arg.empty(); arg = cur.next())
        cap.args.emplace_back(arg);
    const std::string& n = cap.name;
    const auto& args = cap.args;
    auto user_tag = [&](std::size_t i) { return args.size() > i && detail::iequals(args[i], "USER"); };

    if (n == "TOP") top = true;
    else if (n == "USER") user = true;
    else if (n == "UIDL") uidl = true;
    else if (n == "PIPELINING") pipelining = true;
    else if (n == "RESP-CODES") resp_codes = true;
    else if (n == "AUTH-RESP-CODE") auth_resp_code = true;
    else if (n == "STLS") stls = true;
    else if (n == "LANG") lang = true;
    else if (n == "UTF8") {
        utf8 = true;
        utf8_user = user_tag(0);
    } else if (n == "SASL") {
        for (const auto& a : args) sasl.push_back(detail::upper(a));
    } else if (n == "IMPLEMENTATION") {
        implementation.assign(rest);
    } else if (n == "LOGIN-DELAY") {
        login_delay_policy p;
        if (args.empty()) return error::not_a_number;
        if (auto ec = parse_number(args[0], p.seconds)) return ec;
        p.per_user = user_tag(1);
        login_delay = p;
    } else if (n == "EXPIRE") {
        expire_policy p;
        if (args.empty()) return error::not_a_number;
        if (detail::iequals(args[0], "NEVER")) p.never = true;
        else if (auto ec = parse_number(args[0], p.days)) return ec;
        p.per_user = user_tag(1);
        expire = p;
    }
    all.push_back(std::move(cap));
    return {};
}

error_code parse_capabilities(std::string_view body, capabilities& out, const parser_limits& limits) {
    line_reader reader{limits.max_line};
    auto on_line = [&](std::string_view line) { return out.add_line(line, limits); };
    if (auto ec = reader.feed(body, on_line)) return ec;
    return reader.finish(on_line);
}

}  // namespace pop3
