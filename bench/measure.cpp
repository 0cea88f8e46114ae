// Runs a command and reports what it cost, as one JSON line on stdout:
// wall seconds, CPU seconds (user + system, its waited-for children
// included), peak RSS and exit status; kills its process group after a cap.
//
//   bench_measure CAP_SECONDS COMMAND [ARGS...]
//
// The harness runs clients through this small program rather than
// directly: Linux reports a process's peak RSS as at least that of the
// memory it was forked from, so a client forked from the (large) harness
// would be charged for it. Forked from this one, it starts near zero.

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {
volatile sig_atomic_t expired = 0;
void on_alarm(int) { expired = 1; }
}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: bench_measure CAP_SECONDS COMMAND [ARGS...]\n");
        return 2;
    }
    const double cap = std::atof(argv[1]);
    const auto start = std::chrono::steady_clock::now();
    const pid_t child = ::fork();
    if (child < 0) return 3;
    if (child == 0) {
        ::setpgid(0, 0);
        ::execvp(argv[2], argv + 2);
        std::fprintf(stderr, "bench_measure: cannot run %s: %s\n", argv[2], std::strerror(errno));
        ::_exit(127);
    }
    ::setpgid(child, child);

    struct sigaction sa {};
    sa.sa_handler = on_alarm;
    ::sigaction(SIGALRM, &sa, nullptr);  // no SA_RESTART: wait4 returns EINTR
    itimerval t{};
    t.it_value.tv_sec = static_cast<time_t>(cap);
    t.it_value.tv_usec = static_cast<suseconds_t>((cap - static_cast<double>(t.it_value.tv_sec)) * 1e6);
    ::setitimer(ITIMER_REAL, &t, nullptr);

    int status = 0;
    rusage usage{};
    bool stopped = false;
    for (;;) {
        if (::wait4(child, &status, 0, &usage) == child) break;
        if (errno == EINTR && expired && !stopped) {
            ::kill(-child, SIGKILL);
            stopped = true;
        } else if (errno != EINTR) {
            return 3;
        }
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ::kill(-child, SIGKILL);  // anything the command left behind in its group
    const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::printf("{\"wall\":%.6f,\"cpu\":%.6f,\"rss_kb\":%ld,\"status\":%d,\"stopped\":%s}\n", wall, cpu,
                usage.ru_maxrss, code, stopped ? "true" : "false");
    return 0;
}
