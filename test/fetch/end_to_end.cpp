// pop3fetch end to end against the test server: delete and keep modes,
// Maildir, mbox and MDA, ~/.netrc, the accounts file, JSON, every exit
// status, the server's faults and the disk's. Messages are compared byte
// for byte with what the server holds (with LF line endings).

#include "fetch/delivery.hpp"
#include "fetch/uid_state.hpp"
#include "support.hpp"

#include <cerrno>
#include <cstdlib>

using namespace pop3fetch;
using namespace pop3fetch::test;
using pop3::testing::fault_plan;

namespace {

const char* const password = "correct horse";

const test_password set_password(password);

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

}  // namespace

TEST_CASE("delete mode: every message of every account delivered, then deleted") {
    server_thread srv;
    std::vector<std::string> all;
    for (int i = 0; i < 3; ++i) {
        auto mail = make_mail(8, 10 + i);
        all.insert(all.end(), mail.begin(), mail.end());
        srv.add("user" + std::to_string(i), password, mail);
    }
    temp_dir dir;
    auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", "--json", srv.url("user0"), srv.url("user1"),
                                      srv.url("user2")}));
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(maildir_messages(dir / "Maildir") == as_lf(all));
    for (int i = 0; i < 3; ++i) CHECK(srv.messages("user" + std::to_string(i)).empty());
    CHECK(r.out.find("\"failed_accounts\":0,\"messages\":24,") != std::string::npos);
    CHECK(r.out.find("\"exit_status\":0}") != std::string::npos);
    CHECK(r.out.find("\"deleted\":8") != std::string::npos);

    // Nothing left: a second run fetches nothing and succeeds.
    r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", srv.url("user0")}));
    CHECK(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir").size() == 24);
}

TEST_CASE("keep mode: only messages not fetched before; the server keeps them all") {
    server_thread srv;
    auto mail = make_mail(6, 3);
    srv.add("alice", password, mail);
    temp_dir dir;
    const auto args = plain_args(dir, {"--keep", "--maildir", dir / "Maildir", "--json", srv.url("alice")});
    auto r = run_cli(args);
    REQUIRE(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
    CHECK(srv.messages("alice").size() == 6);

    r = run_cli(args);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("\"messages\":0,") != std::string::npos);
    CHECK(r.out.find("\"skipped\":6") != std::string::npos);
    CHECK(maildir_messages(dir / "Maildir").size() == 6);

    // One new message, one gone: only the new one is fetched.
    auto more = mail;
    more.erase(more.begin());
    more.push_back(make_mail(1, 99)[0]);
    srv.add("alice", password, more);
    r = run_cli(args);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("\"messages\":1,") != std::string::npos);
    auto expect = as_lf(mail);
    expect.insert(to_lf(more.back()));
    CHECK(maildir_messages(dir / "Maildir") == expect);
    // The state forgot the UID no longer on the server.
    std::unique_ptr<uid_state> s;
    std::string detail;
    REQUIRE(!uid_state::open(dir / "state", "alice@127.0.0.1:" + std::to_string(srv.server.port()), s, detail));
    CHECK(s->size() == 6);
}

TEST_CASE("keep mode against a server without UIDL is an error, not a silent re-fetch") {
    pop3::testing::server_options so;
    so.uidl = false;
    server_thread srv(so);
    srv.add("alice", password, make_mail(3, 4));
    temp_dir dir;
    auto r = run_cli(plain_args(dir, {"--keep", "--maildir", dir / "Maildir", srv.url("alice")}));
    CHECK(r.status == 1);
    CHECK(r.err.find("UIDL") != std::string::npos);
    CHECK(r.err.find("alice@127.0.0.1") != std::string::npos);
    CHECK(maildir_messages(dir / "Maildir").empty());
    CHECK(srv.messages("alice").size() == 3);
}

TEST_CASE("mbox and MDA destinations") {
    server_thread srv;
    auto mail = make_mail(5, 5);
    srv.add("alice", password, mail);
    srv.add("bob", password, mail);
    temp_dir dir;
    auto r = run_cli(plain_args(dir, {"--mbox", dir / "mbox", srv.url("alice")}));
    REQUIRE(r.status == 0);
    const std::string box = read_file(dir / "mbox");
    std::size_t froms = 0;
    for (std::size_t p = 0; (p = box.find("From ", p)) != std::string::npos; ++p)
        if (p == 0 || box[p - 1] == '\n') ++froms;
    CHECK(froms == 5);  // bodies' own From lines are quoted
    for (const auto& m : mail) {
        std::string quoted;
        line_converter c(true);
        c.feed(m, quoted);
        c.finish(quoted);
        CHECK(box.find(quoted) != std::string::npos);
    }

    r = run_cli(plain_args(dir, {"--mda", "cat >> '" + (dir / "mda-out") + "'", srv.url("bob")}));
    REQUIRE(r.status == 0);
    std::string expect;
    for (const auto& m : mail) expect += to_lf(m);
    CHECK(read_file(dir / "mda-out").size() == expect.size());
    CHECK(srv.messages("bob").empty());

    // An MDA that fails: nothing deleted, exit 1 with the status said.
    srv.add("bob", password, mail);
    r = run_cli(plain_args(dir, {"--mda", "exit 3", srv.url("bob")}));
    CHECK(r.status == 1);
    CHECK(r.err.find("status 3") != std::string::npos);
    CHECK(srv.messages("bob").size() == 5);
}

TEST_CASE("messages larger than a spill, converted as they arrive: Maildir and MDA store them byte for byte") {
    // Lone CRs, CR CR LF, dot lines and long lines, so that chunk edges
    // fall between a CR and its LF and inside runs of them.
    std::vector<std::string> mail;
    std::uint64_t x = 88172645463325252ull;
    auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    for (std::size_t size : {700000u, 300000u, 40u}) {
        std::string m = "Subject: large " + std::to_string(size) + "\r\n\r\n";
        while (m.size() < size) {
            switch (next() % 6) {
            case 0: m += "a lone\rcarriage return\r\n"; break;
            case 1: m += "ends in two\r\r\n"; break;
            case 2: m += ".a dot line\r\n"; break;
            case 3: m += std::string(next() % 3000, 'x') + "\r\n"; break;
            default: m += "plain text line " + std::to_string(next() % 1000) + "\r\n"; break;
            }
        }
        mail.push_back(m);
    }
    server_thread srv;
    srv.add("alice", password, mail);
    srv.add("bob", password, mail);
    temp_dir dir;
    auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", srv.url("alice")}));
    REQUIRE(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
    r = run_cli(plain_args(dir, {"--mda", "cat >> '" + (dir / "mda-out") + "'", srv.url("bob")}));
    REQUIRE(r.status == 0);
    std::string expect;
    for (const auto& m : mail) expect += to_lf(m);
    CHECK(read_file(dir / "mda-out") == expect);
}

TEST_CASE("passwords from ~/.netrc and --password-file; defaults under HOME") {
    server_thread srv;
    auto mail = make_mail(2, 6);
    srv.add("alice", password, mail);
    temp_dir home;
    const std::string old_home = std::getenv("HOME") ? std::getenv("HOME") : "";
    ::setenv("HOME", home.path.c_str(), 1);
    ::unsetenv("XDG_STATE_HOME");
    write_file(home / ".netrc", "machine 127.0.0.1 login alice password \"" + std::string(password) + "\"\n");
    auto r = run_cli({"--tls", "none", "--allow-plaintext-auth", "--quiet", srv.url("alice")});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    CHECK(maildir_messages(home / "Maildir") == as_lf(mail));  // ~/Maildir
    CHECK(!list_dir(home / ".local/state/pop3fetch").empty());

    // A .netrc others can read is refused: usage error, nothing fetched.
    srv.add("alice", password, mail);
    ::chmod((home / ".netrc").c_str(), 0644);
    r = run_cli({"--tls", "none", "--allow-plaintext-auth", "--quiet", srv.url("alice")});
    CHECK(r.status == 2);
    CHECK(r.err.find("chmod 600") != std::string::npos);

    write_file(home / "pw", std::string(password) + "\n");
    r = run_cli({"--tls", "none", "--allow-plaintext-auth", "--quiet", "--password-file", home / "pw",
                 "--maildir", home / "other", srv.url("alice")});
    CHECK(r.status == 0);
    CHECK(maildir_messages(home / "other").size() == 2);
    ::setenv("HOME", old_home.c_str(), 1);
}

TEST_CASE("accounts file with per-account options") {
    server_thread srv;
    srv.add("alice", password, make_mail(3, 7));
    srv.add("bob", password, make_mail(4, 8));
    temp_dir dir;
    write_file(dir / "accounts", "# two\n" + srv.url("alice") + " --keep\n" + srv.url("bob") + " --mbox '" +
                                     (dir / "bob.mbox") + "'\n");
    auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", "--accounts", dir / "accounts"}));
    CHECK(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir").size() == 3);
    CHECK(srv.messages("alice").size() == 3);  // kept
    CHECK(srv.messages("bob").empty());
    CHECK(!read_file(dir / "bob.mbox").empty());
}

TEST_CASE("exit status 2: usage and configuration errors, before any connection") {
    server_thread srv;
    srv.add("alice", password, make_mail(1, 9));
    temp_dir dir;
    const std::string url = srv.url("alice");
    struct bad_case {
        std::vector<std::string> args;
        std::string says;
    };
    const std::vector<bad_case> cases = {
        {{"--bogus"}, "unknown option --bogus"},
        {{}, "no account"},
        {{"http://alice@x"}, "not an account URL"},
        {{"--password-env", "POP3FETCH_NO_SUCH_VARIABLE", url}, "POP3FETCH_NO_SUCH_VARIABLE is not set"},
        {{"--password-file", dir / "missing", url}, "cannot read"},
        {{url, url}, "listed twice"},
        {{"--accounts", dir / "missing", url}, "accounts file"},
        {{"--ca-file", dir / "missing", url}, "CA file"},
        {{"--mbox", dir / "no/such/dir/mbox", url}, "cannot use"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.says);
        std::vector<std::string> args = {"--tls", "none", "--allow-plaintext-auth", "--maildir", dir / "Maildir"};
        if (c.args.empty() || c.args[0] != "--password-env") {
            args.push_back("--password-env");
            args.push_back("POP3FETCH_TEST_PW");
        }
        auto r = run_cli(with(args, c.args));
        CHECK(r.status == 2);
        CHECK(r.err.find(c.says) != std::string::npos);
    }
    CHECK(srv.stats().connections == 0);
    auto r = run_cli({"--help"});
    CHECK(r.status == 0);
    CHECK(r.out.find("--password-env VAR") != std::string::npos);
}

TEST_CASE("exit status 1: a refused login is said with the account and the server's text") {
    server_thread srv;
    srv.add("alice", "another password", make_mail(2, 10));
    auto good = make_mail(2, 11);
    srv.add("bob", password, good);
    temp_dir dir;
    auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", "--json", srv.url("alice"), srv.url("bob")}));
    CHECK(r.status == 1);
    CHECK(r.err.find("alice@127.0.0.1") != std::string::npos);
    CHECK(r.err.find("the server said: ") != std::string::npos);
    CHECK(r.out.find("\"account\":\"alice@127.0.0.1:" + std::to_string(srv.server.port()) + "\",\"ok\":false") !=
          std::string::npos);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(good));  // the healthy account is done
    CHECK(srv.messages("alice").size() == 2);
}

TEST_CASE("TLS: required by default, with the certificate verified against --ca-file") {
    temp_dir dir;
    {
        // A server without STLS: the password never leaves.
        server_thread srv;
        srv.add("alice", password, make_mail(2, 12));
        auto r = run_cli({"--password-env", "POP3FETCH_TEST_PW", "--quiet", "--maildir", dir / "Maildir", "--state",
                          dir / "state", srv.url("alice")});
        CHECK(r.status == 1);
        CHECK(r.err.find("TLS") != std::string::npos);
        CHECK(srv.stats().logins == 0);
    }
    pop3::testing::server_options so;
    so.tls = pop3::testing::server_options::tls_mode::stls;
    server_thread srv(so);
    auto mail = make_mail(3, 13);
    srv.add("alice", password, mail);
    // Not trusted: the system store does not know the test server.
    auto r = run_cli({"--password-env", "POP3FETCH_TEST_PW", "--quiet", "--maildir", dir / "Maildir", "--state",
                      dir / "state", srv.url("alice")});
    CHECK(r.status == 1);
    CHECK(srv.stats().logins == 0);
    write_file(dir / "ca.pem", srv.server.certificate_pem());
    r = run_cli({"--password-env", "POP3FETCH_TEST_PW", "--quiet", "--maildir", dir / "Maildir", "--state",
                 dir / "state", "--ca-file", dir / "ca.pem", srv.url("alice")});
    CHECK(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
}

TEST_CASE("server faults: retried where it makes sense, and never a message lost or doubled") {
    server_thread srv;
    std::map<std::string, fault_plan> plans;
    plans["drops"].random_drop_seed = 5;
    plans["drops"].random_drop_window = 30000;
    plans["inuse"].refuse_logins = 1;
    plans["inuse"].refuse_code = "IN-USE";
    plans["errcmd"].err_at_command = 6;
    plans["garbage"].garbage_at_command = 7;
    plans["cut"].drop_after_bytes = 9000;
    plans["stall"].stall_at_command = 7;
    plans["onebyte"].one_byte_writes = true;
    plans["perm"].refuse_logins = 100;
    plans["perm"].refuse_code = "SYS/PERM";
    plans["healthy"] = fault_plan{};
    std::map<std::string, std::vector<std::string>> mail;
    temp_dir dir;
    std::string accounts;
    std::uint64_t seed = 20;
    for (const auto& [user, plan] : plans) {
        mail[user] = make_mail(8, ++seed);
        srv.add(user, password, mail[user], plan);
        accounts += srv.url(user) + " --maildir " + (dir / user) + (user == "stall" ? " --timeout 1" : "") + "\n";
    }
    write_file(dir / "accounts", accounts);
    auto r = run_cli(plain_args(dir, {"--accounts", dir / "accounts", "--json"}));
    CHECK(r.status == 1);  // some accounts cannot succeed ([SYS/PERM], the stall)
    auto ok = [&](const std::string& user) {
        return r.out.find("\"account\":\"" + user + "@127.0.0.1:" + std::to_string(srv.server.port()) +
                          "\",\"ok\":true") != std::string::npos;
    };
    CHECK(ok("healthy"));
    CHECK(ok("inuse"));  // retried after [IN-USE]
    CHECK(ok("onebyte"));
    CHECK(!ok("perm"));
    CHECK(!ok("stall"));
    CHECK(r.err.find("perm@") != std::string::npos);
    CHECK(r.err.find("[SYS/PERM]") != std::string::npos);

    for (const auto& [user, original] : mail) {
        CAPTURE(user);
        const auto delivered = maildir_messages(dir / user);
        std::set<std::string> unique(delivered.begin(), delivered.end());
        CHECK(unique.size() == delivered.size());  // nothing doubled
        CHECK(list_dir(dir / (user + "/tmp")).empty());  // a message cut mid-RETR left no file behind
        auto everything = delivered;
        for (const auto& m : srv.messages(user)) everything.insert(to_lf(m));
        for (const auto& m : as_lf(original)) CHECK(everything.count(m) >= 1);  // nothing lost
    }

    // The faults cured: one more run finishes every account, and each
    // maildrop's messages are delivered exactly once over both runs.
    for (const auto& [user, original] : mail) srv.add(user, password, srv.messages(user), fault_plan{});
    r = run_cli(plain_args(dir, {"--accounts", dir / "accounts"}));
    CHECK(r.status == 0);
    for (const auto& [user, original] : mail) {
        CAPTURE(user);
        CHECK(maildir_messages(dir / user) == as_lf(original));
        CHECK(srv.messages(user).empty());
    }
}

TEST_CASE("ENOSPC or EIO while delivering: no DELE for that message, exit 1, state unchanged") {
    server_thread srv;
    auto mail = make_mail(6, 40);
    srv.add("alice", password, mail);
    temp_dir dir;
    const auto args = plain_args(dir, {"--maildir", dir / "Maildir", srv.url("alice")});
    {
        fault_guard g([](step s) { return s == step::fsync ? ENOSPC : 0; });
        auto r = run_cli(args);
        CHECK(r.status == 1);
        CHECK(r.err.find("No space left on device") != std::string::npos);
    }
    CHECK(srv.messages("alice").size() == 6);
    CHECK(srv.deleted("alice").empty());
    CHECK(maildir_messages(dir / "Maildir").empty());
    {
        std::unique_ptr<uid_state> s;
        std::string detail;
        REQUIRE(!uid_state::open(dir / "state", "alice@127.0.0.1:" + std::to_string(srv.server.port()), s, detail));
        CHECK(s->size() == 0);
    }
    {
        // Only the third delivery's link fails (EIO): that message stays.
        std::atomic<int> links{0};
        fault_guard g([&](step s) { return s == step::link && ++links == 3 ? EIO : 0; });
        auto r = run_cli(args);
        CHECK(r.status == 1);
        CHECK(r.err.find("Input/output error") != std::string::npos);
    }
    CHECK(srv.messages("alice").size() == 1);
    CHECK(maildir_messages(dir / "Maildir").size() == 5);
    auto r = run_cli(args);
    CHECK(r.status == 0);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(mail));
}

TEST_CASE("delete mode after a crash before QUIT: messages already stored are deleted, not fetched again") {
    server_thread srv;
    auto mail = make_mail(4, 50);
    srv.add("alice", password, mail);
    const auto uids = srv.call([&] { return srv.server.uids("alice"); });
    temp_dir dir;
    // What a run killed after storing message 2 leaves behind.
    ::mkdir((dir / "state").c_str(), 0700);
    const std::string id = "alice@127.0.0.1:" + std::to_string(srv.server.port());
    write_file(dir / ("state/" + uid_state::key(id) + ".journal"), uids[1] + "\n");
    auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", "--json", srv.url("alice")}));
    CHECK(r.status == 0);
    CHECK(r.out.find("\"messages\":3,") != std::string::npos);
    CHECK(r.out.find("\"deleted\":4") != std::string::npos);
    auto expect = as_lf(mail);
    expect.erase(expect.find(to_lf(mail[1])));
    CHECK(maildir_messages(dir / "Maildir") == expect);
    CHECK(srv.messages("alice").empty());
}

TEST_CASE("a corrupt state file fails its account only") {
    server_thread srv;
    srv.add("alice", password, make_mail(2, 60));
    auto good = make_mail(2, 61);
    srv.add("bob", password, good);
    temp_dir dir;
    ::mkdir((dir / "state").c_str(), 0700);
    const std::string id = "alice@127.0.0.1:" + std::to_string(srv.server.port());
    write_file(dir / ("state/" + uid_state::key(id) + ".uids"), "not a state file\n");
    auto r = run_cli(plain_args(dir, {"--keep", "--maildir", dir / "Maildir", srv.url("alice"), srv.url("bob")}));
    CHECK(r.status == 1);
    CHECK(r.err.find("corrupt") != std::string::npos);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(good));
}

TEST_CASE("keep mode with two messages sharing a UID: both fetched, every time, never skipped") {
    server_thread srv;
    auto mail = make_mail(2, 70);
    const std::vector<std::string> served = {mail[0], mail[0], mail[1]};  // the test server's UIDs hash content
    srv.add("alice", password, served);
    temp_dir dir;
    const auto args = plain_args(dir, {"--keep", "--maildir", dir / "Maildir", "--json", srv.url("alice")});
    auto r = run_cli(args);
    CHECK(r.status == 0);
    CHECK(r.err.find("several messages one UID") != std::string::npos);
    CHECK(maildir_messages(dir / "Maildir") == as_lf(served));
    r = run_cli(args);
    CHECK(r.status == 0);
    CHECK(r.out.find("\"messages\":2,") != std::string::npos);  // the pair again; the other skipped
    CHECK(r.out.find("\"skipped\":1") != std::string::npos);
}

TEST_CASE("faults of the whole server: greeting -ERR, STLS injection, a SCRAM server without the password, LOGIN-DELAY") {
    temp_dir dir;
    auto tls_args = [&](std::vector<std::string> more) {
        std::vector<std::string> a = {"--password-env", "POP3FETCH_TEST_PW", "--quiet", "--maildir", dir / "Maildir",
                                      "--state", dir / "state", "--ca-file", dir / "ca.pem", "--timeout", "5", "--json"};
        a.insert(a.end(), more.begin(), more.end());
        return a;
    };
    {
        pop3::testing::server_options so;
        so.faults.greeting_err = true;
        server_thread srv(so);
        srv.add("alice", password, make_mail(1, 80));
        auto r = run_cli(plain_args(dir, {"--maildir", dir / "Maildir", srv.url("alice")}));
        CHECK(r.status == 1);
        CHECK(r.err.find("[SYS/TEMP] server not available") != std::string::npos);
        CHECK(srv.messages("alice").size() == 1);
    }
    for (int which = 0; which < 2; ++which) {
        CAPTURE(which);
        pop3::testing::server_options so;
        so.tls = pop3::testing::server_options::tls_mode::stls;
        std::vector<std::string> more;
        if (which == 0) {
            so.faults.stls_inject = "+OK injected\r\n";  // met before the user is known: server-wide
        } else {
            so.faults.bad_scram_signature = true;  // also decided before the account's own plan applies
            more = {"--auth", "scram-sha-256"};
        }
        server_thread srv(so);
        write_file(dir / "ca.pem", srv.server.certificate_pem());
        srv.add("alice", password, make_mail(2, 81));
        more.push_back(srv.url("alice"));
        auto r = run_cli(tls_args(more));
        CHECK(r.status == 1);
        CHECK(r.out.find("\"attempts\":1,") != std::string::npos);  // a security failure is not retried
        CHECK(srv.messages("alice").size() == 2);
        CHECK(r.err.find(which == 0 ? "STLS" : "prove it knows the password") != std::string::npos);
    }
    {
        pop3::testing::server_options so;
        so.login_delay = 1;
        server_thread srv(so);
        fault_plan plan;
        plan.refuse_logins = 1;
        plan.refuse_code = "LOGIN-DELAY";
        auto mail = make_mail(2, 82);
        srv.add("alice", password, mail, plan);
        const auto start = std::chrono::steady_clock::now();
        auto r = run_cli(plain_args(dir, {"--maildir", dir / "delayed", "--json", srv.url("alice")}));
        CHECK(r.status == 0);
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::seconds(1));  // LOGIN-DELAY honoured
        CHECK(r.out.find("\"retries\":1") != std::string::npos);
        CHECK(maildir_messages(dir / "delayed") == as_lf(mail));
    }
}
