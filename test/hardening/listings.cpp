// Hardening, the poller's side: listings, sizes, UIDs and pipelining that a
// broken server gets wrong, each against the test server with its replies
// rewritten. What must hold every time: the outcome says what happened, no
// message is delivered with wrong bytes, and no message is deleted that was
// not delivered.

#include <pop3/poller.hpp>
#include <pop3/testing/server.hpp>

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <map>
#include <set>

namespace asio = boost::asio;
using namespace pop3;

namespace {

struct poll_result {
    account_outcome outcome;
    std::map<std::uint64_t, std::string> committed;  // by message number
    std::map<std::uint64_t, std::string> uids;       // as the handler saw them
    std::vector<std::string> left;                   // on the server afterwards
    std::vector<std::string> deleted;
};

// Polls one account (delete mode unless `keep`) holding `mail` with `faults`.
poll_result poll(const std::vector<std::string>& mail, testing::fault_plan faults,
                 std::function<void(account&)> adjust = {}) {
    asio::io_context ioc;
    testing::server server(ioc.get_executor());
    server.add_account("u", "p", mail, std::move(faults));
    REQUIRE(!server.start());
    poll_result r;
    std::map<std::uint64_t, std::string> bodies;
    message_handler h;
    h.open = [&](const account&, const message_info& m) {
        bodies[m.number].clear();
        r.uids[m.number] = m.uid;
        body_sink sink;
        sink.write = [&bodies, n = m.number](std::string_view c) {
            bodies[n].append(c);
            return error_code{};
        };
        return sink;
    };
    h.done = [&](const account&, const message_info& m, error_code ec,
                 asio::any_completion_handler<void(error_code)> committed) {
        if (!ec) r.committed[m.number] = bodies[m.number];
        std::move(committed)(ec);
    };
    poller_options po;
    po.retry.base = std::chrono::milliseconds(10);
    po.retry.max = std::chrono::milliseconds(50);
    po.on_account_done = [&](const account_outcome& o) { r.outcome = o; };
    poller p(ioc.get_executor(), h, po);
    account a;
    a.id = "u";
    a.host = "127.0.0.1";
    a.port = std::to_string(server.port());
    a.options.tls = tls_policy::none;
    a.options.allow_plaintext_auth = true;
    a.options.reply_timeout = std::chrono::milliseconds(500);
    a.creds.user = "u";
    a.creds.password = "p";
    if (adjust) adjust(a);
    p.add(std::move(a));
    bool done = false;
    p.async_run([&](error_code) { done = true; });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(std::chrono::milliseconds(50));
    REQUIRE_MESSAGE(done, "the poller did not finish in time");
    r.left = server.messages("u");
    r.deleted = server.deleted("u");
    return r;
}

std::vector<std::string> mail(std::size_t n, std::uint64_t seed = 3) {
    testing::maildrop_spec s;
    s.count = n;
    s.median_size = 2000;
    s.seed = seed;
    return testing::generate_messages(s);
}

// Every committed message is the server's message of that number, byte for
// byte; every deleted message was committed.
void check_nothing_wrong(const poll_result& r, const std::vector<std::string>& original) {
    std::multiset<std::string> committed;
    for (const auto& [n, body] : r.committed) {
        REQUIRE(n >= 1);
        REQUIRE(n <= original.size());
        CHECK(body == original[n - 1]);
        committed.insert(body);
    }
    for (const auto& d : r.deleted) CHECK(committed.count(d) == 1);
    CHECK(r.left.size() + r.deleted.size() == original.size());
}

// Replaces the size LIST gives message `n` with `size`.
void list_size(std::string& reply, std::uint64_t n, const std::string& size) {
    const std::string key = "\r\n" + std::to_string(n) + " ";
    const std::size_t from = reply.find(key) + key.size();
    reply.replace(from, reply.find("\r\n", from) - from, size);
}

}  // namespace

TEST_CASE("LIST naming a message twice: the account fails before anything is fetched or deleted") {
    const auto m = mail(4);
    testing::fault_plan f;
    f.rewrite = [](std::string_view cmd, std::string& reply) {
        if (cmd == "LIST") reply.insert(reply.find("\r\n.\r\n") + 2, "2 500\r\n");
    };
    auto r = poll(m, f);
    CHECK(r.outcome.ec == error::duplicate_message_number);
    CHECK(r.committed.empty());
    CHECK(r.deleted.empty());
    CHECK(r.left.size() == 4);
}

TEST_CASE("LIST with an entry out of range: that one fails with the server's -ERR, the rest arrive") {
    const auto m = mail(4);
    testing::fault_plan f;
    f.rewrite = [](std::string_view cmd, std::string& reply) {
        if (cmd == "LIST") reply.insert(reply.find("\r\n.\r\n") + 2, "99 500\r\n");
    };
    auto r = poll(m, f);
    CHECK(!r.outcome.ec);
    CHECK(r.outcome.messages == 4);
    CHECK(r.outcome.failed_messages == 1);
    CHECK(r.committed.size() == 4);
    CHECK(r.deleted.size() == 4);
    check_nothing_wrong(r, m);
}

TEST_CASE("sizes -1, non-numeric and over 64 bits: the account fails with the reason, nothing touched") {
    const std::vector<std::pair<std::string, error>> cases = {
        {"-1", error::negative_number}, {"12k", error::not_a_number}, {"18446744073709551616", error::number_too_large}};
    for (const auto& [size, expected] : cases) {
        CAPTURE(size);
        const auto m = mail(3);
        testing::fault_plan f;
        f.rewrite = [size = size](std::string_view cmd, std::string& reply) {
            if (cmd == "LIST") list_size(reply, 2, size);
        };
        auto r = poll(m, f);
        CHECK(r.outcome.ec == expected);
        CHECK(r.outcome.attempts == 1);  // malformed data is not retried
        CHECK(r.committed.empty());
        CHECK(r.left.size() == 3);
    }
}

TEST_CASE("RETR length differing from LIST: delivered whole, counted as a warning") {
    const auto m = mail(3);
    testing::fault_plan f;
    f.rewrite = [](std::string_view cmd, std::string& reply) {
        if (cmd == "LIST") list_size(reply, 3, "7");
    };
    auto r = poll(m, f);
    CHECK(!r.outcome.ec);
    CHECK(r.outcome.size_mismatches == 1);
    CHECK(r.committed.size() == 3);
    check_nothing_wrong(r, m);
}

TEST_CASE("-ERR to RETR or DELE of a listed message: that message stays on the server") {
    const auto m = mail(5);
    testing::fault_plan f;
    f.refuse = [](std::string_view cmd) { return cmd == "RETR 2" || cmd == "DELE 4"; };
    auto r = poll(m, f);
    CHECK(!r.outcome.ec);
    CHECK(r.outcome.failed_messages == 1);
    CHECK(r.committed.count(2) == 0);
    CHECK(r.committed.size() == 4);
    CHECK(r.outcome.deleted == 3);
    CHECK(r.left == std::vector<std::string>{m[1], m[3]});
    check_nothing_wrong(r, m);
}

TEST_CASE("UIDL: missing and extra entries; bad UIDs; -ERR") {
    SUBCASE("missing and extra entries: messages without a UID arrive with none, extra ones are ignored") {
        const auto m = mail(3);
        testing::fault_plan f;
        f.rewrite = [](std::string_view cmd, std::string& reply) {
            if (cmd != "UIDL") return;
            const std::size_t two = reply.find("\r\n2 ") + 2;
            reply.erase(two, reply.find("\r\n", two) + 2 - two);
            reply.insert(reply.find("\r\n.\r\n") + 2, "77 extra-uid\r\n");
        };
        auto r = poll(m, f);
        CHECK(!r.outcome.ec);
        CHECK(r.committed.size() == 3);
        CHECK(r.uids[2].empty());
        CHECK(!r.uids[1].empty());
        check_nothing_wrong(r, m);
    }
    SUBCASE("empty, 71 octets, 1 MiB, control characters: the account fails, nothing fetched") {
        const std::vector<std::pair<std::string, error>> cases = {
            {"", error::uid_empty},
            {std::string(71, 'u'), error::uid_too_long},
            {std::string(1 << 20, 'u'), error::line_too_long},
            {"ab\x01" "cd", error::uid_bad_char}};
        for (const auto& [uid, expected] : cases) {
            CAPTURE(uid.size());
            const auto m = mail(2);
            testing::fault_plan f;
            f.rewrite = [uid = uid](std::string_view cmd, std::string& reply) {
                if (cmd != "UIDL") return;
                const std::size_t from = reply.find("\r\n1 ") + 4;
                reply.replace(from, reply.find("\r\n", from) - from, uid);
            };
            auto r = poll(m, f);
            CHECK(r.outcome.ec == expected);
            CHECK(r.committed.empty());
            CHECK(r.left.size() == 2);
        }
    }
    SUBCASE("UIDL -ERR: the account fails with the server's words after its retries, nothing fetched") {
        const auto m = mail(2);
        testing::fault_plan f;
        f.refuse = [](std::string_view cmd) { return cmd == "UIDL"; };
        auto r = poll(m, f, [](account& a) { a.keep = true; });
        CHECK(r.outcome.ec == error::server_refused);
        CHECK(r.outcome.diag.code().kind == response_code_kind::sys_temp);
        CHECK(r.outcome.diag.server_message().find("refused") != std::string::npos);
        CHECK(r.outcome.retries.size() == 2);  // [SYS/TEMP] is retried
        CHECK(r.committed.empty());
        CHECK(r.left.size() == 2);
    }
}

TEST_CASE("an extra +OK mid-batch: replies out of step, stopped before a wrong message is delivered or deleted") {
    // After RETR 1 the extra +OK becomes the next RETR's status line, and
    // that message's body would start with the real one: caught there
    // (reply_out_of_step). After DELE 1 it answers a later DELE or QUIT, and
    // one reply is left over at the end (unexpected_data). Either way every
    // message delivered is the right one, and only those can be deleted.
    for (const std::string cmd : {"RETR 1", "DELE 1"}) {
        CAPTURE(cmd);
        const auto m = mail(6);
        testing::fault_plan f;
        f.rewrite = [cmd](std::string_view c, std::string& reply) {
            if (c == cmd) reply += "+OK\r\n";
        };
        auto r = poll(m, f);
        CHECK(r.outcome.ec == (cmd == "RETR 1" ? error::reply_out_of_step : error::unexpected_data));
        CHECK(r.outcome.attempts == 1);  // not retried: it would happen again
        if (cmd == "RETR 1") {
            CHECK(r.committed.size() < 6);
            CHECK(r.deleted.empty());  // no QUIT: nothing deleted
        }
        check_nothing_wrong(r, m);  // every message delivered is the right one; only those deleted
    }
}

TEST_CASE("PIPELINING advertised, only the first command answered: a timeout, then lock-step, all delivered") {
    const auto m = mail(5);
    testing::fault_plan f;
    f.pipelining_first_only = true;
    auto r = poll(m, f);
    CHECK(!r.outcome.ec);
    CHECK(r.outcome.pipelining_off);
    REQUIRE(r.outcome.retries.size() == 1);
    CHECK(r.outcome.retries[0].ec == error::timeout);
    CHECK(r.committed.size() == 5);
    CHECK(r.deleted.size() == 5);
    check_nothing_wrong(r, m);
}

TEST_CASE("a server silent on a command sent alone is slow, not broken: pipelining stays on") {
    const auto m = mail(2);
    testing::fault_plan f;
    f.stall_at_command = 1;  // CAPA, the first command, sent alone
    auto r = poll(m, f);
    CHECK(r.outcome.ec == error::timeout);
    CHECK(r.outcome.retries.size() == 2);
    CHECK(!r.outcome.pipelining_off);
}

TEST_CASE("a message cut by a broken session and fetched by the retry is not counted as failed") {
    const auto m = mail(4);
    testing::fault_plan f;
    auto cut_once = std::make_shared<bool>(false);
    f.rewrite = [cut_once](std::string_view cmd, std::string& reply) {
        if (cmd == "RETR 3" && !*cut_once) {
            *cut_once = true;
            reply = reply.substr(0, 200) + "\r\n";  // then silence inside the message
        }
    };
    auto r = poll(m, f, [](account& a) { a.options.pipeline.depth = 1; });
    CHECK(!r.outcome.ec);
    REQUIRE(r.outcome.retries.size() == 1);
    CHECK(r.outcome.retries[0].ec == error::timeout);
    CHECK(r.outcome.failed_messages == 0);
    CHECK(!r.outcome.pipelining_off);
    CHECK(r.committed.size() == 4);
    CHECK(r.left.empty());
    check_nothing_wrong(r, m);
}
