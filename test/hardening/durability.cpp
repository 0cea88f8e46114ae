// Hardening, pop3fetch's side: faults at the worst moments for a fetcher
// (around QUIT, during a slow delivery, while saving its state, with two
// runs at once). Whatever fails, every message ends up stored exactly once
// after the runs that follow, and nothing is deleted before it is stored.

#include "fetch/delivery.hpp"
#include "fetch/uid_state.hpp"
#include "../fetch/support.hpp"

#include <cerrno>
#include <cstdlib>
#include <future>

using namespace pop3fetch;
using namespace pop3fetch::test;
using pop3::testing::fault_plan;

namespace {

const char* const password = "hardening";

const test_password set_password(password);

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("QUIT -ERR, and a reset at QUIT before or after the server commits: nothing lost, nothing twice") {
    for (const int variant : {0, 1, 2}) {
        CAPTURE(variant);
        server_thread srv;
        const auto mail = make_mail(5, 60 + variant);
        fault_plan f;
        if (variant == 0) f.quit_err = true;
        if (variant == 1) f.quit_drop = fault_plan::quit_drop::before_commit;
        if (variant == 2) f.quit_drop = fault_plan::quit_drop::after_commit;
        srv.add("alice", password, mail, f);
        temp_dir dir;
        const auto args = plain_args(dir, {"--maildir", dir / "Maildir", srv.url("alice")});
        auto first = run_cli(args);
        CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));  // all stored, once
        if (variant == 0) {
            CHECK(first.status == 1);
            CHECK(contains(first.err, "some deleted messages not removed"));  // the server's words
            CHECK(srv.messages("alice").size() == 5);  // QUIT committed nothing
        }
        if (variant == 1) {
            CHECK(first.status == 1);
            CHECK(contains(first.err, "closed the connection"));
            CHECK(srv.messages("alice").size() == 5);
        }
        if (variant == 2) CHECK(srv.messages("alice").empty());  // committed; the retry found nothing
        // The server mends; the next run deletes what was stored, fetching nothing again.
        srv.add("alice", password, srv.messages("alice"));
        auto second = run_cli(args);
        CHECK(second.status == 0);
        CHECK(srv.messages("alice").empty());
        CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
    }
}

TEST_CASE("local delivery slower than the server's autologout: runs that follow finish the job, no duplicates") {
    server_thread srv;
    const auto mail = make_mail(4, 70);
    fault_plan f;
    f.autologout = std::chrono::milliseconds(250);
    srv.add("alice", password, mail, f);
    temp_dir dir;
    ::mkdir((dir / "out").c_str(), 0700);
    // Each delivery takes 0.4 s: longer than the server waits for a command.
    const std::string mda = "sleep 0.4; cat > \"$(mktemp '" + (dir / "out") + "/m.XXXXXX')\"";
    const auto args = plain_args(dir, {"--mda", mda, "--pipeline", "1", srv.url("alice")});
    int runs = 0, status = -1;
    while (status != 0 && runs < 6) {
        status = run_cli(args).status;
        ++runs;
    }
    CHECK(status == 0);
    CHECK(srv.stats().logins >= 2);  // the autologout cut sessions short; retries and runs went on
    std::multiset<std::string> delivered;
    for (const auto& name : list_dir(dir / "out")) delivered.insert(read_file(dir / "out/" + name));
    CHECK(delivered == as_lf(mail));  // each exactly once
    CHECK(srv.messages("alice").empty());
}

TEST_CASE("the UID state: a journal write that fails warns; a save that fails loses nothing") {
    server_thread srv;
    const auto mail = make_mail(4, 80);
    srv.add("alice", password, mail);
    temp_dir dir;
    const auto args = plain_args(dir, {"--keep", "--maildir", dir / "Maildir", "--json", srv.url("alice")});
    {
        // The state's rename fails (a full disk): the run's UIDs stay in the journal.
        fault_guard g([](step s) { return s == step::state_rename ? ENOSPC : 0; });
        auto r = run_cli(args);
        CHECK(r.status == 0);
        CHECK(contains(r.err, "No space left on device"));
        CHECK(contains(r.err, "journal keeps every UID"));
    }
    {
        auto r = run_cli(args);  // folds the journal in: nothing fetched again
        CHECK(r.status == 0);
        CHECK(contains(r.out, "\"messages\":0,"));
        CHECK(contains(r.out, "\"skipped\":4,"));
    }
    CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
    // Two new messages, and the journal cannot be written: stored all the
    // same, with a warning; keep mode then fetches them again (a duplicate,
    // the documented window), never loses them.
    auto more = make_mail(2, 81);
    srv.add("alice", password, [&] {
        auto all = mail;
        all.insert(all.end(), more.begin(), more.end());
        return all;
    }());
    {
        fault_guard g([](step s) { return s == step::journal_write ? EIO : 0; });
        auto r = run_cli(args);
        CHECK(r.status == 0);
        CHECK(contains(r.err, "a later run may fetch it again"));
        CHECK(contains(r.out, "\"messages\":2,"));
    }
    auto r = run_cli(args);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "\"messages\":2,"));  // fetched again: the UIDs were never recorded
    auto third = run_cli(args);
    CHECK(contains(third.out, "\"messages\":0,"));
    CHECK(maildir_messages(dir / "Maildir").size() == 8);
    CHECK(srv.messages("alice").size() == 6);  // keep mode: the server keeps them all
}

TEST_CASE("two runs at once on one account: the second is refused, the first finishes") {
    pop3::testing::server_options so;
    so.one_way_delay = std::chrono::milliseconds(100);  // the first run lasts a while
    server_thread srv(so);
    const auto mail = make_mail(6, 90);
    srv.add("alice", password, mail);
    temp_dir dir;
    const auto args = plain_args(dir, {"--maildir", dir / "Maildir", "--pipeline", "1", srv.url("alice")});
    auto first = std::async(std::launch::async, [&] { return run_cli(args); });
    // Once the server saw its login, the first run holds the account's
    // state lock (taken before any connection).
    bool logged_in = false;
    for (int i = 0; i < 500 && !logged_in; ++i) {
        logged_in = srv.stats().logins >= 1;
        if (!logged_in) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(logged_in);
    const std::string id = "alice@127.0.0.1:" + std::to_string(srv.server.port());
    auto second = run_cli(args);
    CHECK(second.status == 1);
    CHECK(contains(second.err, id));
    auto r = first.get();
    CHECK(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
    CHECK(srv.messages("alice").empty());
}

TEST_CASE("--max-size: larger messages stay on the server with a warning; a lie in LIST is refused, not cut") {
    server_thread srv;
    auto mail = make_mail(3, 95, 2000);
    mail.push_back("Subject: large\r\n\r\n" + std::string(200 * 1024, 'L') + "\r\n");
    srv.add("alice", password, mail);
    temp_dir dir;
    auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", "--max-size", "100K", "--json", srv.url("alice")}));
    CHECK(r.status == 0);
    CHECK(contains(r.err, "1 messages over --max-size"));
    CHECK(contains(r.out, "\"oversized\":1,"));
    CHECK(srv.messages("alice") == std::vector<std::string>{mail[3]});
    // A server that lists the large one at 10 octets: refused whole, kept on the server.
    fault_plan lie;
    lie.rewrite = [](std::string_view cmd, std::string& reply) {
        if (cmd != "LIST") return;
        const std::size_t from = reply.find("\r\n1 ") + 4;
        reply.replace(from, reply.find("\r\n", from) - from, "10");
    };
    srv.add("bob", password, {mail[3]}, lie);
    auto b = run_cli(plain_args(dir, {"--maildir", dir / "bob", "--max-size", "100K", srv.url("bob")}));
    CHECK(b.status == 1);
    CHECK_MESSAGE(contains(b.err, "over the size cap"), b.err);
    CHECK(maildir_messages(dir / "bob").empty());
    CHECK(srv.messages("bob").size() == 1);
    CHECK(list_dir(dir / "bob/tmp").empty());  // nothing half-written left behind
    CHECK(pop3fetch::test::run_cli({"--max-size", "12X", "pop3://a@b"}).status == 2);
}
