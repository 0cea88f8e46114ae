// pop3fetch --demo: the built-in test server on loopback, with generated
// maildrops and a network delay, fetched into a temporary Maildir; then the
// same maildrops fetched one command per round trip, to show what
// pipelining saves. Every delivered message is checked against the server's.

#include "fetcher.hpp"

#include <pop3/testing/server.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <ostream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace pop3fetch {
namespace asio = boost::asio;

namespace {

constexpr std::size_t demo_accounts = 300;
constexpr std::size_t demo_messages = 10;          // per account
constexpr auto demo_delay = std::chrono::milliseconds(5);  // each way

/// The files in DIR/new, read whole.
std::vector<std::string> read_new(const std::string& maildir) {
    std::vector<std::string> out;
    const std::string dir = maildir + "/new";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream in(dir + "/" + e->d_name, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        out.push_back(ss.str());
    }
    ::closedir(d);
    return out;
}

void remove_tree(const std::string& path) {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
}

}  // namespace

int run_demo(const options& cli, std::ostream& out, std::ostream& err) {
    std::string base = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
    std::string dir = base + "/pop3fetch-demo-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
        err << "pop3fetch: cannot make a directory in " << base << "\n";
        return 2;
    }

    // The test server, on a thread of its own, with STLS: the fetcher's
    // defaults (TLS required, certificates verified) hold in the demo too.
    asio::io_context server_ioc(1);
    pop3::testing::server_options so;
    so.one_way_delay = demo_delay;
    so.tls = pop3::testing::server_options::tls_mode::stls;
    // PLAIN over TLS, as most providers offer: the SCRAM mechanisms cost
    // a PBKDF2 of 4096 rounds on each side of every login, which on a small
    // machine would turn the demo into a measure of the CPU.
    so.sasl = {"PLAIN", "LOGIN"};
    pop3::testing::server srv(server_ioc.get_executor(), so);
    std::vector<std::vector<std::string>> mail(demo_accounts);
    std::uint64_t total_bytes = 0;
    auto fill = [&] {
        for (std::size_t i = 0; i < demo_accounts; ++i) {
            pop3::testing::maildrop_spec spec;
            spec.count = demo_messages;
            spec.seed = 1000 + i;
            if (mail[i].empty()) {
                mail[i] = pop3::testing::generate_messages(spec);
                for (const auto& m : mail[i]) total_bytes += m.size();
            }
            char user[32];
            std::snprintf(user, sizeof user, "demo%03zu", i + 1);
            srv.add_account(user, std::string("pw-") + user, mail[i]);
        }
    };
    fill();
    if (auto ec = srv.start()) {
        err << "pop3fetch: the demo server cannot start: " << ec.message() << "\n";
        return 2;
    }
    auto guard = asio::make_work_guard(server_ioc);
    std::thread server_thread([&] { server_ioc.run(); });

    auto make_options = [&](const std::string& maildir, const std::string& state, std::size_t depth,
                            run_extras& extras) {
        options o;
        o.concurrency = cli.concurrency;
        o.json = cli.json;
        o.quiet = cli.quiet;
        o.progress = cli.progress;
        o.tls_context = srv.client_tls_context();
        extras.accounts.clear();
        for (std::size_t i = 0; i < demo_accounts; ++i) {
            account_spec a;
            char user[32];
            std::snprintf(user, sizeof user, "demo%03zu", i + 1);
            a.user = user;
            a.host = "127.0.0.1";
            a.port = std::to_string(srv.port());
            a.url = "pop3://" + a.user + "@" + a.host + ":" + a.port;
            a.password = std::string("pw-") + user;
            a.s.dest = destination_kind::maildir;
            a.s.dest_arg = maildir;
            a.s.state_dir = state;
            a.s.pipeline = depth;
            a.s.timeout_seconds = 30;
            extras.accounts.push_back(std::move(a));
        }
        return o;
    };

    err << "pop3fetch demo: the test server on 127.0.0.1:" << srv.port() << " holds " << demo_accounts
        << " maildrops, " << demo_accounts * demo_messages << " messages (" << total_bytes / 1000
        << " kB), behind " << demo_delay.count() << " ms of delay each way, with STLS.\n"
        << "Fetching them all, " << cli.concurrency << " maildrops at once, pipelined, into " << dir
        << "/Maildir\n";

    run_extras extras;
    extras.print_summary = false;
    options o = make_options(dir + "/Maildir", dir + "/state", 0, extras);
    run_summary piped;
    const int status = run(o, out, err, extras, &piped);

    // Check every message against what the server held.
    std::multiset<std::string> expected, got;
    for (const auto& box : mail)
        for (const auto& m : box) expected.insert(pop3::testing::to_lf(m));
    for (auto& m : read_new(dir + "/Maildir")) got.insert(std::move(m));
    const bool same = expected == got;

    // The same work, one command per round trip.
    err << "Now the same maildrops again, one command per round trip (no pipelining)...\n";
    fill();
    options lock_o = make_options(dir + "/lockstep", dir + "/lockstep-state", 1, extras);
    lock_o.json = false;
    run_summary lock;
    const int lock_status = run(lock_o, out, err, extras, &lock);
    remove_tree(dir + "/lockstep");
    remove_tree(dir + "/lockstep-state");

    guard.reset();
    srv.stop();
    server_thread.join();

    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "\n  accounts      %zu (%llu failed)\n  messages      %llu\n  bytes         %.1f MB\n"
                  "  time          %.2f s\n  messages/s    %.0f\n",
                  piped.accounts.size(), static_cast<unsigned long long>(piped.failed_accounts),
                  static_cast<unsigned long long>(piped.messages), static_cast<double>(piped.bytes) / 1e6,
                  piped.seconds, piped.seconds > 0 ? static_cast<double>(piped.messages) / piped.seconds : 0.0);
    err << buf;
    std::snprintf(buf, sizeof buf,
                  "  pipelining    the same fetch one command per round trip took %.2f s: pipelining saved %.2f s "
                  "(%.1fx faster)\n",
                  lock.seconds, lock.seconds - piped.seconds, piped.seconds > 0 ? lock.seconds / piped.seconds : 0.0);
    err << buf;
    err << "  checked       " << got.size() << " messages in " << dir << "/Maildir/new "
        << (same ? "are byte for byte the server's (with LF line endings)" : "DIFFER from the server's") << "\n";
    if (!same || status != 0 || lock_status != 0) return 1;
    return 0;
}

}  // namespace pop3fetch
