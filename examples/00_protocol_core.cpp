// Example 0: the sans-I/O protocol core on its own.
//
// Encodes a pipelined batch of commands, then parses a server's replies to
// them from one buffer, as a driver would after a socket read: every reply
// is matched to its command by order, and a message body comes out in
// chunks with its dot-stuffing removed. No socket is involved.

#include <pop3/capabilities.hpp>
#include <pop3/command.hpp>
#include <pop3/listing.hpp>
#include <pop3/reply_parser.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main() {
    struct sent {
        pop3::command_kind kind;
        std::size_t args;
    };
    std::vector<sent> pipeline;
    std::string wire;
    auto send = [&](pop3::command_kind kind, std::initializer_list<std::string_view> args) {
        if (auto ec = pop3::encode_command(wire, kind, args)) {
            std::printf("refused locally: %s\n", ec.message().c_str());
            return;
        }
        pipeline.push_back({kind, args.size()});
    };
    send(pop3::command_kind::capa, {});
    send(pop3::command_kind::stat, {});
    send(pop3::command_kind::list, {});
    send(pop3::command_kind::retr, {"1"});
    send(pop3::command_kind::retr, {"9"});
    send(pop3::command_kind::user, {"bob\r\nDELE 1"});  // never reaches the wire
    for (std::size_t at = 0; at < wire.size();) {
        const std::size_t end = wire.find("\r\n", at);
        std::printf("C: %s\n", wire.substr(at, end - at).c_str());
        at = end + 2;
    }

    // What a server sends back, in one read.
    std::string buffer =
        "+OK capability list follows\r\nUIDL\r\nTOP\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n"
        "+OK 2 320\r\n"
        "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
        "+OK 120 octets\r\nSubject: hello\r\n\r\n..a line that starts with a dot\r\n.\r\n"
        "-ERR [SYS/PERM] no such message\r\n";

    pop3::reply_parser parser;
    for (const sent& cmd : pipeline) {
        parser.start(pop3::shape_of(cmd.kind, cmd.args));
        std::string body;
        while (!parser.done()) {
            pop3::error_code ec;
            const auto r = parser.parse(buffer, ec);
            if (ec) {
                std::printf("protocol error: %s\n", ec.message().c_str());
                return 1;
            }
            if (r.event == pop3::parse_event::body) body.append(r.body);
            buffer.erase(0, r.consumed);
            if (r.event == pop3::parse_event::need_more) {
                std::printf("the reply to %s is incomplete\n", std::string(pop3::keyword(cmd.kind)).c_str());
                return 1;
            }
        }
        const auto& st = parser.status();
        std::printf("S: %s to %s: %s%s%s\n", st.ok() ? "+OK" : "-ERR",
                    std::string(pop3::keyword(cmd.kind)).c_str(),
                    st.code.text.empty() ? "" : ("[" + st.code.text + "] ").c_str(), st.text.c_str(),
                    body.empty() ? "" : " (with a body)");
        if (cmd.kind == pop3::command_kind::capa) {
            pop3::capabilities caps;
            if (!pop3::parse_capabilities(body, caps))
                std::printf("   pipelining: %s, SASL mechanisms: %zu\n", caps.pipelining ? "yes" : "no",
                            caps.sasl.size());
        } else if (cmd.kind == pop3::command_kind::stat) {
            pop3::stat_info s;
            if (!pop3::parse_stat(st.text, s))
                std::printf("   %llu messages, %llu octets\n", static_cast<unsigned long long>(s.count),
                            static_cast<unsigned long long>(s.octets));
        } else if (cmd.kind == pop3::command_kind::retr && st.ok()) {
            std::printf("   unstuffed body:\n%s", body.c_str());
        }
    }
    return 0;
}
