// pop3fetch's pieces: line conversion, URLs, options, ~/.netrc, the UID
// state, and the three destinations with faults injected at every step.

#include "fetch/config.hpp"
#include "fetch/delivery.hpp"
#include "fetch/group_sync.hpp"
#include "fetch/uid_state.hpp"
#include "support.hpp"

#include <cerrno>
#include <random>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

using namespace pop3fetch;
using namespace pop3fetch::test;

namespace {

std::string convert(bool mboxrd, const std::vector<std::string>& chunks) {
    line_converter c(mboxrd);
    std::string out;
    for (const auto& ch : chunks) c.feed(ch, out);
    c.finish(out);
    return out;
}

/// The same through feed_lf, the Maildir and MDA path: into a raw buffer
/// of exactly the room it asks for, garbage past it checked untouched.
std::string convert_lf(const std::vector<std::string>& chunks) {
    line_converter c(false);
    std::string out;
    for (const auto& ch : chunks) {
        const std::size_t room = line_converter::feed_lf_room(ch.size());
        std::string buf(room + 8, '#');
        const std::size_t n = c.feed_lf(ch, buf.data());
        REQUIRE(n <= ch.size() + 1);
        CHECK(buf.substr(room) == "########");  // no store past the room
        out.append(buf, 0, n);
    }
    c.finish(out);
    return out;
}

/// Every way of cutting `in` in two gives the same output as one piece.
void check_splits(bool mboxrd, const std::string& in, const std::string& expect) {
    CHECK(convert(mboxrd, {in}) == expect);
    for (std::size_t i = 0; i <= in.size(); ++i) {
        CAPTURE(i);
        CHECK(convert(mboxrd, {in.substr(0, i), in.substr(i)}) == expect);
    }
    std::vector<std::string> bytes;
    for (char c : in) bytes.emplace_back(1, c);
    CHECK(convert(mboxrd, bytes) == expect);
}

error_code deliver_one(destination& d, const std::string& wire, std::string& detail) {
    std::unique_ptr<incoming> in;
    if (auto ec = d.begin("acct", in)) return ec;
    if (auto ec = in->write(wire)) {
        d.discard(*in);
        return ec;
    }
    auto ec = d.deliver(*in, detail);
    if (ec) d.discard(*in);
    return ec;
}

}  // namespace

TEST_CASE("CRLF becomes LF across chunk boundaries; a lone CR stays") {
    check_splits(false, "a\r\nb\r\n", "a\nb\n");
    check_splits(false, "a\rb\r\r\n", "a\rb\r\n");
    check_splits(false, "end\r", "end\r");
    check_splits(false, "From x\r\n", "From x\n");  // Maildir: no quoting
    CHECK(convert_lf({"a\r", "\nb\r", "c\r", "\r\n", "end\r"}) == "a\nb\rc\r\nend\r");
}

TEST_CASE("CRLF to LF on long random input, cut anywhere, matches a plain reference") {
    // Long enough for the sixteen-octet blocks, dense in CRs and LFs (runs
    // of them, a CR at a block's edge, a CRLF split between chunks).
    // Then sparse ones, where most blocks (sixteen or thirty-two octets)
    // hold no CRLF or just one.
    std::mt19937 rng(2449);
    const char alphabet[] = {'\r', '\r', '\n', '\n', 'a', 'b', '.', '\0'};
    for (int round = 0; round < 600; ++round) {
        std::string in;
        const std::size_t len = rng() % (round < 300 ? 120 : 3000);
        for (std::size_t i = 0; i < len; ++i) {
            if (round < 400 || rng() % 40 == 0)
                in += alphabet[rng() % sizeof alphabet];
            else
                in += static_cast<char>('a' + rng() % 26);
        }
        std::string expect;
        for (std::size_t i = 0; i < in.size(); ++i)
            if (!(in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')) expect += in[i];
        CAPTURE(round);
        CHECK(convert(false, {in}) == expect);
        std::vector<std::string> pieces;
        for (std::size_t at = 0; at < in.size();) {
            const std::size_t n = 1 + rng() % 70;
            pieces.push_back(in.substr(at, n));
            at += n;
        }
        CHECK(convert(false, pieces) == expect);
        CHECK(convert_lf({in}) == expect);
        CHECK(convert_lf(pieces) == expect);
    }
}

TEST_CASE("mboxrd quoting of From lines, wherever the chunks are cut") {
    check_splits(true, "Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\nFromage\r\nFrom\r\n",
                 "Subject: x\n\n>From here\n>>From there\n>>>From far\nFromage\nFrom\n");
    check_splits(true, "From the start\r\n", ">From the start\n");
    check_splits(true, ">>Fro", ">>Fro");
    check_splits(true, "x\r\n>From", "x\n>From");  // no blank after From: not a From line
    // A bare LF ends a line; a bare CR does not.
    check_splits(true, "a\nFrom b\r\nc\rFrom d\r\n", "a\n>From b\nc\rFrom d\n");
    check_splits(false, "long line without end\nnext\r", "long line without end\nnext\r");
}

TEST_CASE("envelope sender from Return-Path") {
    CHECK(envelope_sender("Return-Path: <bob@example.org>\nSubject: x\n\nbody") == "bob@example.org");
    CHECK(envelope_sender("return-path:   carol@example.org\n\n") == "carol@example.org");
    CHECK(envelope_sender("Return-Path: <>\n\n") == "MAILER-DAEMON");
    CHECK(envelope_sender("Subject: x\n\nReturn-Path: <late@example.org>\n") == "MAILER-DAEMON");
}

TEST_CASE("account URLs") {
    account_spec a;
    REQUIRE(!parse_url("pop3://alice@mail.example.org", "", a));
    CHECK(a.user == "alice");
    CHECK(a.host == "mail.example.org");
    CHECK(a.port == "110");
    CHECK(!a.implicit_tls);
    REQUIRE(!parse_url("pop3s://bob%40example.org@[::1]:1995/", "", a));
    CHECK(a.user == "bob@example.org");
    CHECK(a.host == "::1");
    CHECK(a.port == "1995");
    CHECK(a.implicit_tls);
    REQUIRE(!parse_url("pop3s://carol@", "mailhost.example.org", a));  // MAILHOST
    CHECK(a.host == "mailhost.example.org");
    CHECK(a.port == "995");
    CHECK(a.id() == "carol@mailhost.example.org:995");
    for (const char* bad : {"imap://a@b", "pop3://b", "pop3://@b", "pop3://a@b:0", "pop3://a@b:99999", "pop3://a@b:x",
                            "pop3://a@b/INBOX", "pop3://a%2@b", "pop3://a%0D%0A@b", "pop3://a@"}) {
        CAPTURE(bad);
        CHECK(parse_url(bad, "", a) == errc::bad_url);
    }
}

TEST_CASE("command line") {
    options o;
    std::string msg;
    REQUIRE(parse_command_line({"--keep", "--concurrency=8", "--pipeline", "16", "--tls", "opportunistic", "--auth",
                                "scram-sha-256", "--mbox", "/tmp/x", "--json", "pop3://a@h"},
                               o, msg));
    CHECK(o.defaults.keep);
    CHECK(o.concurrency == 8);
    CHECK(o.defaults.pipeline == 16);
    CHECK(o.defaults.tls == pop3::tls_policy::opportunistic);
    CHECK(o.defaults.auth == pop3::auth_mechanism::scram_sha_256);
    CHECK(o.defaults.dest == destination_kind::mbox);
    CHECK(o.json);
    CHECK(o.urls == std::vector<std::string>{"pop3://a@h"});
    CHECK(o.defaults.max_size == std::uint64_t(1) << 30);  // the default
    for (const auto& [text, octets] : std::vector<std::pair<std::string, std::uint64_t>>{
             {"100", 100}, {"50k", 50 * 1024}, {"3M", 3 << 20}, {"4096G", std::uint64_t(1) << 42}}) {
        options m;
        REQUIRE(parse_command_line({"--max-size", text, "pop3://a@h"}, m, msg));
        CHECK(m.defaults.max_size == octets);
    }

    for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
             {"--frobnicate"}, {"--concurrency", "0"}, {"--pipeline", "lots"}, {"--tls", "maybe"}, {"--auth", "kerberos"},
             {"--timeout"}, {"--keep=yes"}, {"--mda", ""}, {"--max-size", "0"}, {"--max-size", "12X"},
             {"--max-size", "4097G"}, {"--max-size", "1099511627776G"}}) {  // the last would wrap to 64 octets
        options x;
        CAPTURE(bad[0]);
        CHECK(!parse_command_line(bad, x, msg));
        CHECK(!msg.empty());
    }
}

TEST_CASE("accounts file: URLs, per-line options, comments, quotes") {
    temp_dir dir;
    write_file(dir / "accounts",
               "# my accounts\n"
               "pop3://alice@a.example.org --keep --password-env ALICE_PW\n"
               "\n"
               "pop3s://bob@b.example.org:1995 --mda 'procmail -d bob' # bob's mail\n"
               "pop3://carol@ --pipeline 1\n");
    options o;
    o.defaults.timeout_seconds = 7;
    std::vector<account_spec> accts;
    std::string msg;
    REQUIRE(read_accounts_file(dir / "accounts", o, "mailhost.example.org", accts, msg));
    REQUIRE(accts.size() == 3);
    CHECK(accts[0].s.keep);
    CHECK(accts[0].s.password_env == "ALICE_PW");
    CHECK(accts[0].s.timeout_seconds == 7);  // the command line's default
    CHECK(accts[1].s.dest == destination_kind::mda);
    CHECK(accts[1].s.dest_arg == "procmail -d bob");
    CHECK(accts[1].port == "1995");
    CHECK(!accts[1].s.keep);
    CHECK(accts[2].host == "mailhost.example.org");
    CHECK(accts[2].s.pipeline == 1);

    write_file(dir / "bad", "pop3://alice@a --concurrency 3\n");
    accts.clear();
    CHECK(!read_accounts_file(dir / "bad", o, "", accts, msg));
    CHECK(msg.find("bad:1:") != std::string::npos);
    write_file(dir / "bad2", "pop3://alice@a --mda 'unterminated\n");
    CHECK(!read_accounts_file(dir / "bad2", o, "", accts, msg));
}

TEST_CASE("netrc: machine and login, default, macdef, and a file others can read") {
    temp_dir dir;
    const std::string path = dir / "netrc";
    write_file(path,
               "machine a.example.org login other password nope\n"
               "machine a.example.org login alice password s3cret\n"
               "macdef init\n"
               "machine a.example.org login alice password fromthemacro\n"
               "\n"
               "machine b.example.org password anyuser\n"
               "default login bob password fallback\n"
               "machine q.example.org login dan password \"two words \\\" and a quote\"\n");
    std::optional<std::string> p;
    REQUIRE(!netrc_password(path, "a.example.org", "alice", p));
    CHECK(p == "s3cret");
    REQUIRE(!netrc_password(path, "b.example.org", "zed", p));
    CHECK(p == "anyuser");
    REQUIRE(!netrc_password(path, "c.example.org", "bob", p));
    CHECK(p == "fallback");
    REQUIRE(!netrc_password(path, "c.example.org", "zed", p));
    CHECK(!p);
    REQUIRE(!netrc_password(path, "q.example.org", "dan", p));
    CHECK(p == "two words \" and a quote");
    REQUIRE(!netrc_password(dir / "missing", "a.example.org", "alice", p));
    CHECK(!p);
    ::chmod(path.c_str(), 0644);
    CHECK(netrc_password(path, "a.example.org", "alice", p) == errc::netrc_unsafe);
}

TEST_CASE("UID state: journal, atomic save, pruning") {
    temp_dir dir;
    std::string detail;
    {
        std::unique_ptr<uid_state> s;
        REQUIRE(!uid_state::open(dir / "state", "alice@h:110", s, detail));
        CHECK(s->size() == 0);
        REQUIRE(!s->record("uid-1"));
        REQUIRE(!s->record("uid-2"));
        CHECK(s->contains("uid-1"));

        // A second run on the same account is refused while this one holds it.
        std::unique_ptr<uid_state> other;
        CHECK(uid_state::open(dir / "state", "alice@h:110", other, detail) == errc::state_in_use);

        // An account done releases its lock (a run over many accounts does
        // not hold them all to the end); its UIDs stay readable.
        std::unique_ptr<uid_state> third;
        REQUIRE(!uid_state::open(dir / "state", "bob@h:110", third, detail));
        third->release();
        CHECK(third->record("uid-9"));  // refused once released
        std::unique_ptr<uid_state> again;
        CHECK(!uid_state::open(dir / "state", "bob@h:110", again, detail));
    }
    {
        // The journal of a run that never saved (a crash) is taken in.
        std::unique_ptr<uid_state> s;
        REQUIRE(!uid_state::open(dir / "state", "alice@h:110", s, detail));
        CHECK(s->contains("uid-1"));
        CHECK(s->contains("uid-2"));
        std::unordered_set<std::string> on_server{"uid-2", "uid-3"};
        REQUIRE(!s->save(&on_server));
        CHECK(!s->contains("uid-1"));
        CHECK(read_file(s->state_path()).rfind("pop3fetch-uids 1\nuid-2\nend 1 ", 0) == 0);
    }
    const std::string stem = dir / ("state/" + uid_state::key("alice@h:110"));
    CHECK(read_file(stem + ".journal").empty());
    {
        // A last journal line cut short by a crash is ignored.
        write_file(stem + ".journal", "uid-4\nuid-5");
        std::unique_ptr<uid_state> s;
        REQUIRE(!uid_state::open(dir / "state", "alice@h:110", s, detail));
        CHECK(s->contains("uid-2"));
        CHECK(s->contains("uid-4"));
        CHECK(!s->contains("uid-5"));
        REQUIRE(!s->save(nullptr));
    }
    CHECK(uid_state::key("a/b c@h:1") == "a%2Fb%20c@h:1");
}

TEST_CASE("UID state: record_all appends several UIDs with one fdatasync, or none when one is not a UID") {
    temp_dir dir;
    std::string detail;
    std::unique_ptr<uid_state> s;
    REQUIRE(!uid_state::open(dir / "state", "carol@h:110", s, detail));
    const std::string a = "uid-a", b = "uid-b", c = "uid-c", bad = "has space";
    int syncs = 0;
    {
        fault_guard g([&](step st) {
            if (st == step::journal_sync) ++syncs;
            return 0;
        });
        const std::string* three[] = {&a, &b, &c};
        REQUIRE(!s->record_all(three));
    }
    CHECK(syncs == 1);
    const std::string stem = dir / ("state/" + uid_state::key("carol@h:110"));
    CHECK(read_file(stem + ".journal") == "uid-a\nuid-b\nuid-c\n");
    const std::string d = "uid-d";
    const std::string* mixed[] = {&d, &bad};
    CHECK(s->record_all(mixed) == std::errc::invalid_argument);
    CHECK(!s->contains("uid-d"));
    CHECK(read_file(stem + ".journal") == "uid-a\nuid-b\nuid-c\n");
    s.reset();
    std::unique_ptr<uid_state> again;
    REQUIRE(!uid_state::open(dir / "state", "carol@h:110", again, detail));
    CHECK(again->contains("uid-a"));
    CHECK(again->contains("uid-c"));
    CHECK(!again->contains("uid-d"));
}

TEST_CASE("UID state: a corrupt file is refused, never taken as empty") {
    temp_dir dir;
    const std::string stem = dir / uid_state::key("alice@h:110");
    std::string detail;
    std::unique_ptr<uid_state> s;
    for (const char* bad : {"garbage\n", "pop3fetch-uids 1\nuid-1\n", "pop3fetch-uids 1\nuid-1\nend 2 0000000000000000\n",
                            "pop3fetch-uids 1\nuid 1\nend 1 0000000000000000\n", "pop3fetch-uids 1\nend 0 00"}) {
        CAPTURE(bad);
        write_file(stem + ".uids", bad);
        CHECK(uid_state::open(dir.path, "alice@h:110", s, detail) == errc::state_corrupt);
        CHECK(detail.find(".uids") != std::string::npos);
    }
    // A checksum that does not match the UIDs: a flipped octet.
    {
        ::unlink((stem + ".uids").c_str());
        REQUIRE(!uid_state::open(dir.path, "alice@h:110", s, detail));
        REQUIRE(!s->record("abc"));
        REQUIRE(!s->save(nullptr));
        s.reset();
        std::string text = read_file(stem + ".uids");
        text[text.find("abc")] = 'x';
        write_file(stem + ".uids", text);
        CHECK(uid_state::open(dir.path, "alice@h:110", s, detail) == errc::state_corrupt);
    }
    ::unlink((stem + ".uids").c_str());
    write_file(stem + ".journal", "ok\nnot ok\n");
    CHECK(uid_state::open(dir.path, "alice@h:110", s, detail) == errc::state_corrupt);
}

TEST_CASE("Maildir: delivered into new/, LF line endings, unique names") {
    temp_dir dir;
    error_code ec;
    auto d = make_maildir(dir / "Maildir", ec);
    REQUIRE(!ec);
    std::string detail;
    REQUIRE(!deliver_one(*d, "Subject: one\r\n\r\nbody\r\n", detail));
    REQUIRE(!deliver_one(*d, "Subject: two\r\n\r\nbody\r\n", detail));
    auto names = list_dir(dir / "Maildir/new");
    REQUIRE(names.size() == 2);
    CHECK(names[0] != names[1]);
    CHECK(list_dir(dir / "Maildir/tmp").empty());
    CHECK(list_dir(dir / "Maildir/cur").empty());
    CHECK(maildir_messages(dir / "Maildir") ==
          std::multiset<std::string>{"Subject: one\n\nbody\n", "Subject: two\n\nbody\n"});
}

TEST_CASE("Maildir: a name already taken in new/ is never replaced; the message gets another") {
    temp_dir dir;
    error_code ec;
    auto d = make_maildir(dir / "Maildir", ec);
    REQUIRE(!ec);
    std::unique_ptr<incoming> in;
    REQUIRE(!d->begin("acct", in));
    REQUIRE(!in->write("Subject: new\r\n\r\nbody\r\n"));
    const auto tmp_names = list_dir(dir / "Maildir/tmp");
    REQUIRE(tmp_names.size() == 1);
    const std::string taken = dir / "Maildir/new/" + tmp_names.front();
    // Another writer took the name in new/ meanwhile.
    write_file(taken, "Subject: theirs\n\nkept\n");
    std::string detail;
    CHECK(!d->deliver(*in, detail));
    CHECK(list_dir(dir / "Maildir/tmp").empty());
    CHECK(list_dir(dir / "Maildir/new").size() == 2);
    CHECK(read_file(taken) == "Subject: theirs\n\nkept\n");
    CHECK(maildir_messages(dir / "Maildir") ==
          std::multiset<std::string>{"Subject: new\n\nbody\n", "Subject: theirs\n\nkept\n"});
}

TEST_CASE("Maildir: a failure at any step leaves nothing delivered and nothing behind") {
    for (step failing : {step::create, step::write, step::fsync, step::link, step::dir_fsync}) {
        for (int err : {ENOSPC, EIO}) {
            CAPTURE(static_cast<int>(failing));
            CAPTURE(err);
            temp_dir dir;
            error_code ec;
            auto d = make_maildir(dir / "Maildir", ec);
            REQUIRE(!ec);
            fault_guard g([&](step s) { return s == failing ? err : 0; });
            std::string detail;
            const error_code got = deliver_one(*d, "Subject: x\r\n\r\nbody\r\n", detail);
            CHECK(got == error_code(err, boost::system::system_category()));
            CHECK(list_dir(dir / "Maildir/new").empty());
            CHECK(list_dir(dir / "Maildir/tmp").empty());
        }
    }
}

TEST_CASE("Maildir: deliver_all stores several messages under one fsync of new/, and takes them all back if it fails") {
    auto receive = [](destination& d, const std::string& wire) {
        std::unique_ptr<incoming> in;
        REQUIRE(!d.begin("acct", in));
        REQUIRE(!in->write(wire));
        return in;
    };
    for (bool dir_fsync_fails : {false, true}) {
        CAPTURE(dir_fsync_fails);
        temp_dir dir;
        error_code ec;
        auto d = make_maildir(dir / "Maildir", ec);
        REQUIRE(!ec);
        std::vector<std::unique_ptr<incoming>> owned;
        for (int i = 1; i <= 3; ++i) owned.push_back(receive(*d, "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n"));
        std::vector<incoming*> ms;
        for (auto& m : owned) ms.push_back(m.get());
        int dir_syncs = 0, moves = 0;
        fault_guard g([&](step s) {
            if (s == step::link) ++moves;
            if (s != step::dir_fsync) return 0;
            ++dir_syncs;
            return dir_fsync_fails ? EIO : 0;
        });
        std::vector<error_code> results(3);
        std::vector<std::string> details(3);
        d->deliver_all(ms, results, details);
        CHECK(moves == 3);
        CHECK(dir_syncs == 1);
        CHECK(list_dir(dir / "Maildir/tmp").empty());
        if (!dir_fsync_fails) {
            for (const auto& r : results) CHECK(!r);
            CHECK(maildir_messages(dir / "Maildir") ==
                  std::multiset<std::string>{"Subject: 1\n\nbody\n", "Subject: 2\n\nbody\n", "Subject: 3\n\nbody\n"});
        } else {
            // Not known to be durable: none stays, so none is deleted.
            for (std::size_t i = 0; i < 3; ++i) {
                CHECK(results[i] == std::errc::io_error);
                CHECK(details[i].find("fsync of") != std::string::npos);
            }
            CHECK(list_dir(dir / "Maildir/new").empty());
        }
    }
}

TEST_CASE("Maildir: in deliver_all, one message's failure leaves the others delivered") {
    temp_dir dir;
    error_code ec;
    auto d = make_maildir(dir / "Maildir", ec);
    REQUIRE(!ec);
    std::vector<std::unique_ptr<incoming>> owned(3);
    for (int i = 0; i < 3; ++i) {
        REQUIRE(!d->begin("acct", owned[i]));
        REQUIRE(!owned[i]->write("Subject: " + std::to_string(i + 1) + "\r\n\r\nx\r\n"));
    }
    std::vector<incoming*> ms{owned[0].get(), owned[1].get(), owned[2].get()};
    int fsyncs = 0;
    fault_guard g([&](step s) { return s == step::fsync && ++fsyncs == 2 ? ENOSPC : 0; });
    std::vector<error_code> results(3);
    std::vector<std::string> details(3);
    d->deliver_all(ms, results, details);
    CHECK(!results[0]);
    CHECK(results[1] == std::errc::no_space_on_device);
    CHECK(!results[2]);
    d->discard(*owned[1]);
    CHECK(list_dir(dir / "Maildir/tmp").empty());
    CHECK(maildir_messages(dir / "Maildir") ==
          std::multiset<std::string>{"Subject: 1\n\nx\n", "Subject: 3\n\nx\n"});
}

TEST_CASE("mbox: From lines, mboxrd quoting, separation, and rollback on failure") {
    temp_dir dir;
    const std::string box = dir / "mbox";
    error_code ec;
    auto d = make_mbox(box, dir.path, 2000, ec);
    REQUIRE(!ec);
    std::string detail;
    REQUIRE(!deliver_one(*d, "Return-Path: <bob@example.org>\r\nSubject: a\r\n\r\nFrom me\r\n", detail));
    REQUIRE(!deliver_one(*d, "Subject: b\r\n\r\nno final newline", detail));
    const std::string text = read_file(box);
    CHECK(text.rfind("From bob@example.org ", 0) == 0);
    CHECK(text.find("\nSubject: a\n\n>From me\n\nFrom MAILER-DAEMON ") != std::string::npos);
    CHECK(text.size() >= 2);
    CHECK(text.substr(text.size() - 18) == "no final newline\n\n");

    for (step failing : {step::write, step::fsync, step::lock}) {
        CAPTURE(static_cast<int>(failing));
        fault_guard g([&](step s) { return s == failing ? ENOSPC : 0; });
        CHECK(deliver_one(*d, "Subject: c\r\n\r\nbody\r\n", detail) == std::errc::no_space_on_device);
        CHECK(read_file(box) == text);  // rolled back
    }
    REQUIRE(!deliver_one(*d, "Subject: d\r\n\r\nbody\r\n", detail));
    CHECK(read_file(box).size() > text.size());
}

TEST_CASE("mbox: another process holding the lock makes delivery wait, then time out") {
    temp_dir dir;
    const std::string box = dir / "mbox";
    error_code ec;
    auto d = make_mbox(box, dir.path, 300, ec);
    REQUIRE(!ec);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        const int fd = ::open(box.c_str(), O_RDWR);
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        (void)::fcntl(fd, F_SETLK, &fl);
        (void)!::write(ready[1], "x", 1);
        ::pause();
        ::_exit(0);
    }
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    std::string detail;
    CHECK(deliver_one(*d, "Subject: x\r\n\r\nbody\r\n", detail) == errc::mbox_lock_timeout);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    CHECK(read_file(box).empty());
    CHECK(!deliver_one(*d, "Subject: x\r\n\r\nbody\r\n", detail));  // free again
}

TEST_CASE("MDA: the message on stdin; a non-zero exit is a failed delivery") {
    temp_dir dir;
    error_code ec;
    auto ok = make_mda("cat > '" + (dir / "out") + "'", dir.path, ec);
    REQUIRE(!ec);
    std::string detail;
    REQUIRE(!deliver_one(*ok, "Subject: x\r\n\r\nFrom here\r\n", detail));
    CHECK(read_file(dir / "out") == "Subject: x\n\nFrom here\n");

    auto bad = make_mda("cat >/dev/null; exit 75", dir.path, ec);
    REQUIRE(!ec);
    CHECK(deliver_one(*bad, "Subject: x\r\n\r\nbody\r\n", detail) == errc::mda_failed);
    CHECK(detail.find("75") != std::string::npos);
    CHECK(list_dir(dir.path) == std::vector<std::string>{"out"});  // no spool file left
}

TEST_CASE("group commit: every caller's change is covered by a flush that started after it") {
    group_sync g;
    std::atomic<int> flushes{0};
    std::atomic<int> changes{0};
    std::atomic<int> flushed_upto{0};
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                const int mine = ++changes;
                g.sync([&] {
                    const int seen = changes.load();
                    ++flushes;
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                    flushed_upto = std::max(flushed_upto.load(), seen);
                    return error_code();
                });
                if (flushed_upto.load() < mine) ++wrong;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(wrong == 0);
    CHECK(flushes <= 400);
    CHECK(flushes >= 1);
}
