// pop3fetch against a real Dovecot, end to end: delete and keep modes over
// STLS and implicit TLS, many maildrops at once, every delivered message
// compared byte for byte with the file Dovecot stored.

#include "instance.hpp"

#include "../fetch/support.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <set>

using pop3::test::the_dovecot;
using namespace pop3fetch::test;

namespace {

constexpr const char* password_var = "POP3FETCH_DOVECOT_PW";
constexpr const char* password = "fetch-secret";

// Users with messages; what each should receive, in the LF form the
// fetcher stores (from Dovecot's wire form, so a file stored with CRLF or
// without a final newline counts as what POP3 carries).
struct accounts {
    std::vector<std::string> users;
    std::multiset<std::string> expected;

    accounts(const std::string& stem, std::size_t count, std::size_t generated) {
        ::setenv(password_var, password, 1);
        for (std::size_t i = 0; i < count; ++i) {
            const std::string user = pop3::test::fresh_user(stem);
            the_dovecot().add_user(user, password);
            add(user, pop3::test::interop_corpus(1000 * (i + 1), generated));
            users.push_back(user);
        }
    }
    void add(const std::string& user, const std::vector<std::string>& messages) {
        the_dovecot().deliver(user, messages);
        for (const auto& m : messages) expected.insert(pop3::testing::to_lf(pop3::testing::to_crlf(m)));
    }
    std::vector<std::string> urls(const std::string& scheme = "pop3", unsigned short port = 0) const {
        if (port == 0) port = the_dovecot().plain_port();
        std::vector<std::string> out;
        for (const auto& u : users) out.push_back(scheme + "://" + u + "@127.0.0.1:" + std::to_string(port));
        return out;
    }
    std::size_t on_server() const {
        std::size_t n = 0;
        for (const auto& u : users) n += the_dovecot().stored(u).size();
        return n;
    }
};

// TLS verified against the test CA, as a user would run it.
std::vector<std::string> args(const temp_dir& dir, std::vector<std::string> more) {
    std::vector<std::string> a = {"--ca-file", the_dovecot().ca_file(), "--password-env", password_var,
                                  "--state",   dir / "state",           "--quiet",        "--timeout",
                                  "30",        "--maildir",             dir / "Maildir"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

}  // namespace

TEST_CASE("pop3fetch, delete mode over STLS: everything delivered, then gone from Dovecot") {
    accounts acc("fdel", 8, 6);
    temp_dir dir;
    auto a = args(dir, {"--concurrency", "4", "--json"});
    for (const auto& u : acc.urls()) a.push_back(u);
    const auto r = run_cli(a);
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("\"failed_accounts\":0,\"messages\":" + std::to_string(acc.expected.size())) !=
          std::string::npos);
    CHECK(maildir_messages(dir / "Maildir") == acc.expected);
    CHECK(acc.on_server() == 0);
}

TEST_CASE("pop3fetch, keep mode over implicit TLS: each message once, Dovecot keeps them all") {
    accounts acc("fkeep", 3, 5);
    temp_dir dir;
    auto run = [&](std::vector<std::string> extra) {
        auto a = args(dir, {"--keep"});
        a.insert(a.end(), extra.begin(), extra.end());
        for (const auto& u : acc.urls("pop3s", the_dovecot().tls_port())) a.push_back(u);
        return run_cli(a);
    };
    auto r = run({});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == acc.expected);
    const std::size_t kept = acc.on_server();
    CHECK(kept == acc.expected.size());

    // Nothing new: nothing fetched, lock-step this time.
    r = run({"--pipeline", "1"});
    REQUIRE(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == acc.expected);

    // Two new messages in one maildrop: only they arrive.
    acc.add(acc.users[1], {"Subject: new one\n\nfirst\n", "Subject: new two\n\n.second\n"});
    r = run({});
    REQUIRE(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == acc.expected);
    CHECK(acc.on_server() == kept + 2);
}

TEST_CASE("pop3fetch refuses Dovecot's certificate without the test CA, and sends no password") {
    accounts acc("fca", 1, 2);
    temp_dir dir;
    const std::size_t log_before = the_dovecot().log().size();
    const auto r = run_cli({"--password-env", password_var, "--state", dir / "state", "--quiet", "--timeout", "30",
                            "--maildir", dir / "Maildir", acc.urls()[0]});
    CHECK(r.status == 1);
    CHECK(r.err.find(acc.users[0]) != std::string::npos);
    CHECK(maildir_messages(dir / "Maildir").empty());
    CHECK(acc.on_server() == acc.expected.size());
    CHECK(the_dovecot().log().substr(log_before).find("user=<" + acc.users[0] + ">") == std::string::npos);
}
