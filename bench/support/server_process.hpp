#ifndef POP3_BENCH_SUPPORT_SERVER_PROCESS_HPP
#define POP3_BENCH_SUPPORT_SERVER_PROCESS_HPP

// Runs the test server in a child process, so that what the bench measures
// in the parent (heap, CPU, RSS) is the client's alone. The child ends when
// the parent kills it by PID, and on its own after `lifetime`.

#include <pop3/testing/server.hpp>

#include <boost/asio/io_context.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pop3::bench {

/// Lets one process hold many sockets (bounded by the hard limit).
inline void raise_fd_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

inline double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

class server_process {
public:
    /// `fill` adds accounts to the server before it starts.
    server_process(testing::server_options options, std::function<void(testing::server&)> fill,
                   std::chrono::seconds lifetime = std::chrono::seconds(600)) {
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            close(fds[0]);
            raise_fd_limit();
            boost::asio::io_context ioc;
            testing::server server(ioc.get_executor(), options);
            fill(server);
            started st;
            if (!server.start()) st.port = server.port();
            st.setup_cpu = cpu_seconds();  // filling the maildrops is not serving them
            if (write(fds[1], &st, sizeof st) != sizeof st) _exit(1);
            close(fds[1]);
            ioc.run_for(lifetime);
            _exit(0);
        }
        close(fds[1]);
        started st;
        if (read(fds[0], &st, sizeof st) != sizeof st || st.port == 0) {
            close(fds[0]);
            stop();
            throw std::runtime_error("the test server did not start");
        }
        close(fds[0]);
        port_ = st.port;
        setup_cpu_ = st.setup_cpu;
    }
    ~server_process() { stop(); }
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;

    unsigned short port() const noexcept { return port_; }

    /// Stops the server; then server_cpu_seconds() is known.
    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGTERM);
        int status = 0;
        rusage usage{};
        wait4(pid_, &status, 0, &usage);
        server_cpu_ = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                      static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
        pid_ = -1;
    }
    /// CPU seconds the server used serving, once stopped: without the time
    /// it took to fill its maildrops before it listened.
    double server_cpu_seconds() const noexcept { return server_cpu_ - setup_cpu_; }
    /// CPU seconds the server took to fill its maildrops.
    double server_setup_cpu_seconds() const noexcept { return setup_cpu_; }

private:
    struct started {
        unsigned short port = 0;
        double setup_cpu = 0;
    };
    pid_t pid_ = -1;
    unsigned short port_ = 0;
    double server_cpu_ = 0;
    double setup_cpu_ = 0;
};

inline long peak_rss_kib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

}  // namespace pop3::bench

#endif
