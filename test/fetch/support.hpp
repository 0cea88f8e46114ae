#ifndef POP3_TEST_FETCH_SUPPORT_HPP
#define POP3_TEST_FETCH_SUPPORT_HPP

// For the fetcher's tests: a temporary directory, the test server on a
// thread of its own, and pop3fetch run in-process.

#include "fetch/delivery.hpp"
#include "fetch/fetcher.hpp"

#include <pop3/testing/server.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <dirent.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace pop3fetch::test {

/// A delivery fault hook (see set_fault_hook) for the guard's lifetime.
struct fault_guard {
    explicit fault_guard(std::function<int(step)> h) { set_fault_hook(std::move(h)); }
    ~fault_guard() { set_fault_hook({}); }
    fault_guard(const fault_guard&) = delete;
    fault_guard& operator=(const fault_guard&) = delete;
};

/// Sets the password plain_args() passes through POP3FETCH_TEST_PW.
struct test_password {
    explicit test_password(const char* password) { ::setenv("POP3FETCH_TEST_PW", password, 1); }
};

inline void remove_tree(const std::string& path) {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
}

struct temp_dir {
    std::string path;
    temp_dir() {
        std::string t = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + std::string("/pop3fetch-test-XXXXXX");
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~temp_dir() { remove_tree(path); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_file(const std::string& path, const std::string& text, mode_t mode = 0600) {
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
    }
    ::chmod(path.c_str(), mode);
}

inline std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') out.push_back(e->d_name);
        ::closedir(d);
    }
    return out;
}

/// The contents of the files in a Maildir's new/.
inline std::multiset<std::string> maildir_messages(const std::string& maildir) {
    std::multiset<std::string> out;
    for (const auto& f : list_dir(maildir + "/new")) out.insert(read_file(maildir + "/new/" + f));
    return out;
}

using pop3::testing::to_lf;

inline std::multiset<std::string> as_lf(const std::vector<std::string>& mail) {
    std::multiset<std::string> out;
    for (const auto& m : mail) out.insert(to_lf(m));
    return out;
}

/// The test server on a thread of its own; calls into it run there.
struct server_thread {
    boost::asio::io_context ioc{1};
    pop3::testing::server server;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{ioc.get_executor()};
    std::thread thread;

    explicit server_thread(pop3::testing::server_options o = {}) : server(ioc.get_executor(), o) {
        REQUIRE(!server.start());
        thread = std::thread([this] { ioc.run(); });
    }
    template <class F>
    auto call(F f) -> decltype(f()) {
        std::packaged_task<decltype(f())()> task(std::move(f));
        auto result = task.get_future();
        boost::asio::post(ioc, [&task] { task(); });
        return result.get();
    }

    ~server_thread() {
        call([this] { server.stop(); });
        guard.reset();
        thread.join();
    }


    void add(const std::string& user, const std::string& password, std::vector<std::string> mail,
             std::optional<pop3::testing::fault_plan> faults = {}) {
        call([&] { server.add_account(user, password, mail, faults); });
    }
    std::vector<std::string> messages(const std::string& user) {
        return call([&] { return server.messages(user); });
    }
    std::vector<std::string> deleted(const std::string& user) {
        return call([&] { return server.deleted(user); });
    }
    pop3::testing::server_stats stats() {
        return call([&] { return server.stats(); });
    }
    std::string url(const std::string& user) const { return "pop3://" + user + "@127.0.0.1:" + std::to_string(server.port()); }
};

inline std::vector<std::string> make_mail(std::size_t count, std::uint64_t seed, std::size_t median = 3000) {
    pop3::testing::maildrop_spec spec;
    spec.count = count;
    spec.seed = seed;
    spec.median_size = median;
    return pop3::testing::generate_messages(spec);
}

struct cli_result {
    int status = -1;
    std::string out, err;
};

/// pop3fetch's main, in-process.
inline cli_result run_cli(std::vector<std::string> args) {
    std::ostringstream out, err;
    cli_result r;
    r.status = main_entry(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

/// The arguments every test against the plain test server needs.
inline std::vector<std::string> plain_args(const temp_dir& dir, std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"--tls",   "none", "--allow-plaintext-auth", "--password-env", "POP3FETCH_TEST_PW",
                                     "--state", dir / "state", "--quiet", "--timeout", "5"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

}  // namespace pop3fetch::test

#endif
