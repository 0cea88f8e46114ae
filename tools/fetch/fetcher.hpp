#ifndef POP3FETCH_FETCHER_HPP
#define POP3FETCH_FETCHER_HPP

// pop3fetch's run: every account polled concurrently by pop3::poller on one
// network thread, messages delivered on a small pool of delivery threads,
// and a message deleted only once it is durably stored.

#include "config.hpp"

#include <pop3/diagnostics.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace pop3fetch {

struct account_report {
    std::string id;
    bool ok = false;
    error_code ec;            ///< why it failed
    std::string detail;       ///< where (a file, a step), when known
    std::string server_text;  ///< the server's words for ec, when it said any
    std::uint64_t messages = 0;   ///< delivered
    std::uint64_t bytes = 0;      ///< octets of those, as the server counts them
    std::uint64_t deleted = 0;    ///< deleted from the server
    std::uint64_t skipped = 0;    ///< keep mode: delivered by an earlier run
    std::uint64_t failed_messages = 0;
    std::uint64_t oversized = 0;        ///< over --max-size by LIST: left on the server
    std::uint64_t size_mismatches = 0;  ///< delivered, but not the size LIST said (a warning)
    bool pipelining_off = false;        ///< pipelined commands went unanswered: later sessions lock-step
    std::uint64_t attempts = 0;
    std::uint64_t retries = 0;
    std::chrono::milliseconds elapsed{};
};

struct run_summary {
    std::vector<account_report> accounts;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::uint64_t failed_accounts = 0;
    double seconds = 0;
    int exit_status = 0;
};

/// Extra inputs that are not on the command line (the demo's accounts).
struct run_extras {
    std::vector<account_spec> accounts;
    bool handle_signals = false;  ///< SIGINT/SIGTERM stop the run gracefully
    bool print_summary = true;    ///< the one-line summary on stderr
};

/// Runs pop3fetch with parsed options: errors and progress on `err`, the
/// JSON summary (with --json) on `out`. Returns the exit status.
int run(const options& opts, std::ostream& out, std::ostream& err, const run_extras& extras = {},
        run_summary* summary = nullptr);

/// The whole program: argv in, exit status out.
int main_entry(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// The built-in demo (pop3fetch --demo).
int run_demo(const options& opts, std::ostream& out, std::ostream& err);

/// The summary as JSON.
std::string to_json(const run_summary& s);

}  // namespace pop3fetch

#endif
