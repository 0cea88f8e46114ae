// A consumer of the installed static library: the protocol core (encode a
// command, parse a reply with dot-unstuffing) and a TLS context. Built by
// test/consumer/run.sh against libpop3.a.

#include <pop3/command.hpp>
#include <pop3/reply_parser.hpp>
#include <pop3/session_options.hpp>

#include <cstdio>
#include <string>

int main() {
    std::string wire;
    if (pop3::encode_command(wire, pop3::command_kind::retr, 1) || wire != "RETR 1\r\n") return 1;
    pop3::error_code ec;

    pop3::reply_parser parser;
    parser.start(pop3::reply_shape::multi_line);
    const std::string reply = "+OK 9 octets\r\nline\r\n..dot\r\n.\r\n";
    std::string body;
    std::string_view in = reply;
    while (!in.empty()) {
        const pop3::parse_result r = parser.parse(in, ec);
        if (ec) return 2;
        if (r.event == pop3::parse_event::body) body.append(r.body);
        in.remove_prefix(r.consumed);
        if (r.event == pop3::parse_event::done) break;
    }
    const bool ok = body == "line\r\n.dot\r\n" && pop3::make_tls_context({}) != nullptr;
    std::printf("core_app: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 3;
}
