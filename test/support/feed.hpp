#ifndef POP3_TEST_SUPPORT_FEED_HPP
#define POP3_TEST_SUPPORT_FEED_HPP

// Replays server bytes through a reply_parser the way a driver would (a
// buffer that keeps unconsumed bytes), in any chunking, and records what
// came out, so that different chunkings can be compared.

#include <pop3/reply_parser.hpp>

#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace pop3::test {

struct reply_record {
    status_indicator indicator = status_indicator::ok;
    std::string code;
    std::string text;
    std::string body;
    bool has_body = false;
    bool operator==(const reply_record&) const = default;
};

struct transcript {
    std::vector<reply_record> replies;  // complete or in progress
    error_code ec;                      // the parse or EOF error, if any
    std::string leftover;               // bytes not consumed by the replies (none kept on error)
    bool operator==(const transcript&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const transcript& t) {
    os << "{ec=" << t.ec.message() << " leftover=" << t.leftover.size() << "B";
    for (const auto& r : t.replies)
        os << " [" << static_cast<int>(r.indicator) << " code=" << r.code << " text=" << r.text
           << " body(" << r.body.size() << ")=" << r.body << "]";
    return os << "}";
}

/// Feeds `pieces` in order, parsing one reply per entry of `shapes`.
/// EOF is signalled after the last piece if replies remain. With
/// `in_place`, through parse_in_place (which may rewrite the buffer's
/// consumed octets): the transcript must be the same.
inline transcript feed(const std::vector<reply_shape>& shapes, const std::vector<std::string>& pieces,
                       const parser_limits& limits = {}, bool in_place = false) {
    transcript t;
    reply_parser parser{limits};
    std::size_t next_shape = 0;
    std::string buffer;
    auto start_next = [&] {
        if (next_shape == shapes.size()) return false;
        parser.start(shapes[next_shape++]);
        t.replies.emplace_back();
        return true;
    };
    bool active = start_next();
    for (const auto& piece : pieces) {
        buffer += piece;
        while (active) {
            error_code ec;
            const std::string before = in_place ? buffer : std::string();
            const parse_result r =
                in_place ? parser.parse_in_place(buffer.data(), buffer.size(), ec) : parser.parse(buffer, ec);
            if (ec) {
                // How much of a failing reply came out first depends on the
                // chunking; the error itself must not.
                t.ec = ec;
                t.replies.back().body.clear();
                return t;
            }
            REQUIRE(r.consumed <= buffer.size());
            auto& rec = t.replies.back();
            if (r.event == parse_event::status) {
                rec.indicator = parser.status().indicator;
                rec.code = parser.status().code.text;
                rec.text = parser.status().text;
                rec.has_body = !parser.done();
            } else if (r.event == parse_event::body) {
                REQUIRE(!r.body.empty());
                rec.body.append(r.body);
            }
            if (in_place && r.consumed <= buffer.size()) {
                // Only consumed octets may change; the view lies within them
                // (or in the parser's static storage).
                REQUIRE(buffer.compare(r.consumed, std::string::npos, before, r.consumed) == 0);
                if (r.event == parse_event::body && r.body.data() >= buffer.data() &&
                    r.body.data() < buffer.data() + buffer.size())
                    REQUIRE(r.body.data() + r.body.size() <= buffer.data() + r.consumed);
            }
            buffer.erase(0, r.consumed);
            if (parser.done()) {
                active = start_next();
                continue;
            }
            if (r.event == parse_event::need_more) break;
        }
    }
    if (active) t.ec = parser.on_eof();
    t.leftover = buffer;
    return t;
}

inline transcript feed_whole(const std::vector<reply_shape>& shapes, std::string_view wire,
                             const parser_limits& limits = {}) {
    return feed(shapes, {std::string(wire)}, limits);
}

/// Feeds `wire` whole, split in two at every offset, and one byte at a time;
/// checks that every run gives the same transcript, and returns it.
inline transcript grind(const std::vector<reply_shape>& shapes, std::string_view wire,
                        const parser_limits& limits = {}) {
    const transcript whole = feed_whole(shapes, wire, limits);
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        const transcript split =
            feed(shapes, {std::string(wire.substr(0, cut)), std::string(wire.substr(cut))}, limits);
        INFO("split at offset ", cut);
        REQUIRE(split == whole);
    }
    std::vector<std::string> bytes;
    for (char c : wire) bytes.emplace_back(1, c);
    const transcript bytewise = feed(shapes, bytes, limits);
    INFO("one byte at a time");
    REQUIRE(bytewise == whole);
    // The same through parse_in_place: whole, at every cut, a byte at a time.
    REQUIRE(feed(shapes, {std::string(wire)}, limits, true) == whole);
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        INFO("in place, split at offset ", cut);
        REQUIRE(feed(shapes, {std::string(wire.substr(0, cut)), std::string(wire.substr(cut))}, limits, true) ==
                whole);
    }
    REQUIRE(feed(shapes, bytes, limits, true) == whole);
    return whole;
}

inline transcript grind(reply_shape shape, std::string_view wire, const parser_limits& limits = {}) {
    return grind(std::vector<reply_shape>{shape}, wire, limits);
}

}  // namespace pop3::test

#endif
