#include "delivery.hpp"
#include "errors.hpp"
#include "group_sync.hpp"

#include <pop3/header_fields.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace pop3fetch {
namespace {

std::function<int(step)>& hook() {
    static std::function<int(step)> h;
    return h;
}

/// errno of an injected fault for `s`, or 0.
int injected(step s) { return hook() ? hook()(s) : 0; }

error_code sys(int e) { return error_code(e, boost::system::system_category()); }
error_code last_error() { return sys(errno); }

/// Runs a system call for step `s` (unless a fault is injected in its
/// place): its errno when it returns non-zero.
template <class Call>
error_code check(step s, Call call) {
    if (int e = injected(s); e != 0) return sys(e);
    return call() == 0 ? error_code() : last_error();
}

class fd_guard {
public:
    explicit fd_guard(int fd = -1) : fd_(fd) {}
    ~fd_guard() { reset(); }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_;
};

error_code make_directory(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return last_error();
        if (!S_ISDIR(st.st_mode)) return sys(ENOTDIR);
        return {};
    }
    return last_error();
}

/// A message received into a file descriptor: a Maildir tmp/ file, or an
/// unlinked spool file.
class file_incoming final : public incoming {
public:
    /// mbox needs the headers (for the envelope sender) and mboxrd quoting.
    file_incoming(int fd, std::string path, bool mbox)
        : fd_(fd), path_(std::move(path)), conv_(mbox), keep_headers_(mbox) {}

    error_code write(std::string_view chunk) override {
        if (int e = injected(step::write); e != 0) return sys(e);
        // In slices, so that the buffer stays small (and in cache).
        while (!chunk.empty()) {
            const std::string_view slice = chunk.substr(0, scratch_slice);
            chunk.remove_prefix(slice.size());
            if (auto ec = put(convert(slice))) return ec;
        }
        return {};
    }
    std::uint64_t size() const noexcept override { return size_; }

    /// Flushes what the converter holds back.
    error_code finish() {
        std::string& buf = scratch();
        buf.clear();
        conv_.finish(buf);
        return put(buf);
    }

    int fd() const noexcept { return fd_.get(); }
    void close() noexcept { fd_.reset(); }
    const std::string& path() const noexcept { return path_; }
    const std::string& headers() const noexcept { return headers_; }
    char last() const noexcept { return conv_.last(); }

private:
    /// The delivery thread's conversion buffer, used again for every
    /// message it writes: a slice converts to at most its own size, so the
    /// buffer stays near scratch_slice on each of the pool's threads.
    static constexpr std::size_t scratch_slice = 64 * 1024;
    static std::string& scratch() {
        thread_local std::string buf;
        return buf;
    }
    static char* raw_scratch() {
        thread_local std::unique_ptr<char[]> buf(new char[line_converter::feed_lf_room(scratch_slice)]);
        return buf.get();
    }

    /// A slice in stored form, in the thread's scratch buffer: CRLF to LF
    /// straight into a buffer never zero-filled, or (mbox) the converter's
    /// quoting too.
    std::string_view convert(std::string_view slice) {
        if (!keep_headers_) {
            char* buf = raw_scratch();
            return {buf, conv_.feed_lf(slice, buf)};
        }
        std::string& buf = scratch();
        buf.clear();
        conv_.feed(slice, buf);
        return buf;
    }

    error_code put(std::string_view data) {
        if (keep_headers_) {
            // The start of the message, for its Return-Path.
            constexpr std::size_t cap = 16 * 1024;
            if (headers_.size() < cap) headers_.append(data, 0, cap - headers_.size());
        }
        size_ += data.size();
        return write_all(fd_.get(), data);
    }

    fd_guard fd_;
    std::string path_;
    line_converter conv_;
    bool keep_headers_;
    std::string headers_;
    std::uint64_t size_ = 0;
};

/// A spool file in `dir`, unlinked at once: a crash leaves nothing behind.
error_code make_spool(const std::string& dir, bool mboxrd, std::unique_ptr<incoming>& out) {
    if (int e = injected(step::create); e != 0) return sys(e);
    std::string templ = dir + "/pop3fetch-spool-XXXXXX";
    int fd = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) return last_error();
    ::unlink(templ.c_str());
    out = std::make_unique<file_incoming>(fd, std::string(), mboxrd);
    return {};
}

std::string hostname_for_maildir() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    std::string out;
    for (const char* p = buf; *p != 0; ++p) {
        // Maildir names must not hold '/' or ':' (the info separator).
        if (*p == '/') out += "\\057";
        else if (*p == ':') out += "\\072";
        else out += *p;
    }
    return out.empty() ? "localhost" : out;
}

class maildir final : public destination {
public:
    explicit maildir(std::string dir) : dir_(std::move(dir)), host_(hostname_for_maildir()), pid_(::getpid()) {}

    /// Creates the directories, and opens tmp/ and new/: every file is
    /// then named relative to them (no path walked from / per message,
    /// and the Maildir stays the one opened here).
    error_code prepare() {
        for (const std::string& d : {dir_, dir_ + "/tmp", dir_ + "/new", dir_ + "/cur"}) {
            if (auto ec = make_directory(d)) return ec;
        }
        for (auto [fd, sub] : {std::pair{&tmp_fd_, "/tmp"}, std::pair{&new_fd_, "/new"}}) {
            fd->reset(::open((dir_ + sub).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (fd->get() < 0) return last_error();
        }
        return {};
    }

    error_code begin(const std::string&, std::unique_ptr<incoming>& out) override {
        if (int e = injected(step::create); e != 0) return sys(e);
        for (int attempt = 0; attempt < 100; ++attempt) {
            std::string name = unique_name();
            int fd = ::openat(tmp_fd_.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd >= 0) {
                out = std::make_unique<file_incoming>(fd, std::move(name), false);
                return {};
            }
            if (errno != EEXIST) return last_error();
        }
        return errc::name_clash;
    }

    error_code deliver(incoming& m, std::string& detail) override {
        incoming* one[] = {&m};
        error_code ec;
        deliver_all(one, std::span<error_code>(&ec, 1), std::span<std::string>(&detail, 1));
        return ec;
    }

    void deliver_all(std::span<incoming* const> ms, std::span<error_code> ecs,
                     std::span<std::string> details) override {
        // Each message: written out, fsynced, moved into new/ (never over
        // an existing file). Then one fsync of new/ covers them all.
        std::vector<std::string> targets(ms.size());
        bool any = false;
        for (std::size_t i = 0; i < ms.size(); ++i) {
            ecs[i] = into_new(static_cast<file_incoming&>(*ms[i]), targets[i], details[i]);
            any = any || !ecs[i];
        }
        if (!any) return;
        // Concurrent deliveries share the fsync too (group commit).
        const int fault = injected(step::dir_fsync);
        const error_code ec = fault != 0 ? sys(fault) : new_sync_.sync([this] { return sync_new(); });
        if (!ec) return;
        for (std::size_t i = 0; i < ms.size(); ++i) {
            if (ecs[i]) continue;
            // Not known to be durable: take it back, so the message stays
            // on the server and a later run fetches it once.
            ::unlinkat(new_fd_.get(), targets[i].c_str(), 0);
            ecs[i] = ec;
            details[i] = "fsync of " + dir_ + "/new";
        }
    }

    void discard(incoming& m) noexcept override {
        auto& f = static_cast<file_incoming&>(m);
        f.close();
        ::unlinkat(tmp_fd_.get(), f.path().c_str(), 0);
    }

    std::string describe() const override { return "Maildir " + dir_; }

private:
    /// Moves a received message from tmp/ into new/, durable but for the
    /// directory's fsync; `target` is its name in new/.
    error_code into_new(file_incoming& f, std::string& target, std::string& detail) {
        // The file's full path, for the error's detail only (not built per message).
        const auto tmp_path = [&] { return dir_ + "/tmp/" + f.path(); };
        if (auto ec = f.finish()) {
            detail = "writing " + tmp_path();
            return ec;
        }
        if (auto ec = check(step::fsync, [&] { return ::fsync(f.fd()); })) {
            detail = "fsync of " + tmp_path();
            return ec;
        }
        f.close();
        error_code ec;
        for (int attempt = 0; attempt < 100; ++attempt) {
            target = attempt == 0 ? f.path() : unique_name();
            ec = check(step::link, [&] { return move_noreplace(f.path(), target); });
            if (ec != std::errc::file_exists) break;
        }
        if (ec) detail = "moving " + tmp_path() + " into new/";
        return ec;
    }

    /// rename() from tmp/ to new/ that never replaces an existing file:
    /// renameat2's RENAME_NOREPLACE, or link() and unlink() where the file
    /// system lacks it (both fail with EEXIST on a clash).
    int move_noreplace(const std::string& from, const std::string& to) {
        if (!no_renameat2_.load(std::memory_order_relaxed)) {
            if (::renameat2(tmp_fd_.get(), from.c_str(), new_fd_.get(), to.c_str(), RENAME_NOREPLACE) == 0)
                return 0;
            if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
            no_renameat2_.store(true, std::memory_order_relaxed);
        }
        if (::linkat(tmp_fd_.get(), from.c_str(), new_fd_.get(), to.c_str(), 0) != 0) return -1;
        ::unlinkat(tmp_fd_.get(), from.c_str(), 0);
        return 0;
    }

    /// fsync of new/, through the descriptor prepare() opened.
    error_code sync_new() { return ::fsync(new_fd_.get()) == 0 ? error_code() : last_error(); }

    std::string unique_name() {
        using namespace std::chrono;
        const auto now = system_clock::now().time_since_epoch();
        const auto sec = duration_cast<seconds>(now).count();
        const auto usec = duration_cast<microseconds>(now).count() % 1000000;
        return std::to_string(sec) + ".M" + std::to_string(usec) + "P" + std::to_string(pid_) + "Q" +
               std::to_string(++seq_) + "." + host_;
    }

    std::string dir_;
    std::string host_;
    const ::pid_t pid_;
    std::atomic<std::uint64_t> seq_{0};
    std::atomic<bool> no_renameat2_{false};
    fd_guard tmp_fd_;  // the Maildir's tmp/ and new/, opened by prepare()
    fd_guard new_fd_;
    group_sync new_sync_;
};

std::string from_line_date() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
    return buf;
}

/// One mutex per mbox path: fcntl locks keep other processes out, not the
/// other threads of this one.
std::mutex& process_lock(const std::string& path) {
    static std::mutex guard;
    static std::map<std::string, std::unique_ptr<std::mutex>> locks;
    std::lock_guard g(guard);
    auto& m = locks[path];
    if (!m) m = std::make_unique<std::mutex>();
    return *m;
}

/// mbox and MDA: a message is received into an unlinked spool file, and
/// only a complete one goes on to its destination.
class spooled : public destination {
public:
    spooled(std::string spool, bool mboxrd) : spool_(std::move(spool)), mboxrd_(mboxrd) {}

    error_code begin(const std::string&, std::unique_ptr<incoming>& out) override {
        return make_spool(spool_, mboxrd_, out);
    }
    void discard(incoming&) noexcept override {}  // the spool file is unlinked already

protected:
    /// The spool file with everything flushed into it, read from the start.
    static error_code complete(incoming& m, std::string& detail, file_incoming*& f) {
        f = static_cast<file_incoming*>(&m);
        if (auto ec = f->finish()) {
            detail = "writing the spool file";
            return ec;
        }
        if (::lseek(f->fd(), 0, SEEK_SET) < 0) {
            detail = "rewinding the spool file";
            return last_error();
        }
        return {};
    }

private:
    std::string spool_;
    bool mboxrd_;
};

class mbox final : public spooled {
public:
    mbox(std::string file, std::string spool, unsigned timeout_ms)
        : spooled(std::move(spool), true), file_(std::move(file)), timeout_ms_(timeout_ms),
          mutex_(process_lock(file_)) {}

    error_code deliver(incoming& m, std::string& detail) override {
        file_incoming* spool = nullptr;
        if (auto ec = complete(m, detail, spool)) return ec;
        file_incoming& f = *spool;
        std::lock_guard g(mutex_);
        fd_guard fd(::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
        if (fd.get() < 0) {
            detail = "opening " + file_;
            return last_error();
        }
        if (auto ec = lock(fd.get())) {
            detail = "locking " + file_;
            return ec;
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) {
            detail = "stat of " + file_;
            return last_error();
        }
        const off_t original = st.st_size;
        error_code ec = append(fd.get(), f, original, detail);
        if (!ec) {
            ec = check(step::fsync, [&] { return ::fsync(fd.get()); });
            if (ec) detail = "fsync of " + file_;
        }
        if (ec) {
            // Roll the partial append back: the mbox is as it was.
            if (::ftruncate(fd.get(), original) == 0) (void)::fsync(fd.get());
        }
        struct flock unlock {};
        unlock.l_type = F_UNLCK;
        unlock.l_whence = SEEK_SET;
        (void)::fcntl(fd.get(), F_SETLK, &unlock);
        return ec;
    }

    std::string describe() const override { return "mbox " + file_; }

private:
    error_code lock(int fd) {
        if (int e = injected(step::lock); e != 0) return sys(e);
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
        for (;;) {
            if (::fcntl(fd, F_SETLK, &fl) == 0) return {};
            if (errno != EACCES && errno != EAGAIN && errno != EINTR) return last_error();
            if (std::chrono::steady_clock::now() >= deadline) return errc::mbox_lock_timeout;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    error_code append(int fd, file_incoming& f, off_t original, std::string& detail) {
        std::string head;
        // A message must start on a line of its own, after a blank line.
        if (original > 0) {
            char tail[2] = {};
            const off_t n = original >= 2 ? 2 : 1;
            if (::pread(fd, tail, n, original - n) == n) {
                if (tail[n - 1] != '\n') head += "\n\n";
                else if (n == 2 && tail[0] != '\n') head += "\n";
            }
        }
        head += "From " + envelope_sender(f.headers()) + " " + from_line_date() + "\n";
        detail = "appending to " + file_;
        if (int e = injected(step::write); e != 0) return sys(e);
        if (auto ec = write_all(fd, head)) return ec;
        char buf[64 * 1024];
        for (;;) {
            const ssize_t n = ::read(f.fd(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return last_error();
            if (n == 0) break;
            if (auto ec = write_all(fd, std::string_view(buf, static_cast<std::size_t>(n)))) return ec;
        }
        // The message ends with a newline, then a blank line separates it.
        std::string_view tail = f.last() == '\n' || f.size() == 0 ? "\n" : "\n\n";
        return write_all(fd, tail);
    }

    std::string file_;
    unsigned timeout_ms_;
    std::mutex& mutex_;
};

class mda final : public spooled {
public:
    mda(std::string command, std::string spool) : spooled(std::move(spool), false), command_(std::move(command)) {}

    error_code deliver(incoming& m, std::string& detail) override {
        file_incoming* spool = nullptr;
        if (auto ec = complete(m, detail, spool)) return ec;
        file_incoming& f = *spool;
        if (int e = injected(step::mda); e != 0) {
            detail = "running the MDA";
            return sys(e);
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, f.fd(), 0);
        // The MDA's own output goes to stderr: stdout may carry --json.
        posix_spawn_file_actions_adddup2(&actions, 2, 1);
        const char* argv[] = {"/bin/sh", "-c", command_.c_str(), nullptr};
        pid_t pid = -1;
        const int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, const_cast<char**>(argv), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) {
            detail = "starting /bin/sh";
            return sys(rc);
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) return last_error();
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
        detail = WIFEXITED(status) ? "the MDA exited with status " + std::to_string(WEXITSTATUS(status))
                                   : "the MDA was killed by signal " + std::to_string(WTERMSIG(status));
        return errc::mda_failed;
    }

    std::string describe() const override { return "MDA " + command_; }

private:
    std::string command_;
};

}  // namespace

void set_fault_hook(std::function<int(step)> h) { hook() = std::move(h); }
int injected_fault(step s) { return injected(s); }

void line_converter::put(std::string& out, std::string_view s) {
    if (s.empty()) return;
    out.append(s);
    last_ = s.back();
}

void line_converter::stage2(char c, std::string& out) {
    if (!mboxrd_) {
        put(out, std::string_view(&c, 1));
        return;
    }
    if (!line_start_) {
        put(out, std::string_view(&c, 1));
        if (c == '\n') line_start_ = true;
        return;
    }
    // At the start of a line: hold octets back until it is known whether
    // the line is ">*From " (quoted with one more '>').
    head_ += c;
    if (c == '\n') {
        put(out, head_);
        head_.clear();
        return;
    }
    std::size_t k = 0;
    while (k < head_.size() && head_[k] == '>') ++k;
    const std::string_view rest = std::string_view(head_).substr(k);
    constexpr std::string_view from = "From ";
    if (rest.size() < from.size() && from.substr(0, rest.size()) == rest) return;  // undecided
    if (rest.substr(0, from.size()) == from) put(out, ">");
    put(out, head_);
    head_.clear();
    line_start_ = false;
}

namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// Thirty-two octets at a time where the CPU has AVX2 (the same three cases
// as the SSE2 loop below). Returns where it stopped; `w` moves on.
__attribute__((target("avx2"))) std::size_t drop_crs_avx2(const char* p, std::size_t n, char*& w) {
    const __m256i cr = _mm256_set1_epi8('\r');
    const __m256i lf = _mm256_set1_epi8('\n');
    std::size_t i = 0;
    for (; i + 64 <= n; i += 32) {
        const __m256i here = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m256i next = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 1));
        const unsigned crlf = static_cast<unsigned>(
            _mm256_movemask_epi8(_mm256_and_si256(_mm256_cmpeq_epi8(here, cr), _mm256_cmpeq_epi8(next, lf))));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w), here);
        if (crlf == 0) {
            w += 32;
        } else if ((crlf & (crlf - 1)) == 0) {
            const unsigned k = static_cast<unsigned>(__builtin_ctz(crlf));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + k),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + k + 1)));
            w += 31;
        } else {
            for (unsigned k = 0; k < 32; ++k)
                if ((crlf >> k & 1u) == 0) *w++ = p[i + k];
        }
    }
    return i;
}

const bool has_avx2 = __builtin_cpu_supports("avx2");
#endif

}  // namespace

std::size_t line_converter::drop_crs_into(std::string_view in, char* const start) {
    // Maildir and MDA: drop the CR of each CRLF. A block without a CRLF is
    // copied whole; one with a single CRLF (a line is longer than a block,
    // so most are like that) in two stores; the rare rest octet by octet.
    // The stores may run up to 32 octets past what is kept: callers give
    // that slack.
    const char* p = in.data();
    const std::size_t n = in.size();
    char* w = start;
    std::size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (has_avx2) i = drop_crs_avx2(p, n, w);
#endif
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    for (; i + 32 <= n; i += 16) {
        const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 1));
        const unsigned crlf = static_cast<unsigned>(
            _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, cr), _mm_cmpeq_epi8(next, lf))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(w), here);
        if (crlf == 0) {
            w += 16;
        } else if ((crlf & (crlf - 1)) == 0) {
            const unsigned k = static_cast<unsigned>(__builtin_ctz(crlf));
            // The octets after the CR move down over it.
            _mm_storeu_si128(reinterpret_cast<__m128i*>(w + k),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + k + 1)));
            w += 15;
        } else {
            for (unsigned k = 0; k < 16; ++k)
                if ((crlf >> k & 1u) == 0) *w++ = p[i + k];
        }
    }
#endif
    for (; i < n; ++i) {
        if (p[i] == '\r') {
            if (i + 1 == n) {
                pending_cr_ = true;  // CRLF may be split between chunks
                break;
            }
            if (p[i + 1] == '\n') continue;
        }
        *w++ = p[i];
    }
    if (w != start) last_ = w[-1];
    return static_cast<std::size_t>(w - start);
}

void line_converter::drop_crs(std::string_view in, std::string& out) {
    if (in.empty()) return;
    const std::size_t old = out.size();
    out.resize(old + in.size() + drop_slack);
    out.resize(old + drop_crs_into(in, out.data() + old));
}

std::size_t line_converter::feed_lf(std::string_view in, char* out) {
    char* w = out;
    if (pending_cr_ && !in.empty()) {
        pending_cr_ = false;
        if (in[0] == '\n') {  // the CRLF split between chunks
            in.remove_prefix(1);
            *w++ = '\n';
        } else {
            *w++ = '\r';  // a CR alone stays
        }
        last_ = w[-1];
    }
    return static_cast<std::size_t>(w - out) + drop_crs_into(in, w);
}

void line_converter::feed(std::string_view in, std::string& out) {
    out.reserve(out.size() + in.size() + 8);
    const char* base = in.data();
    std::size_t i = 0;
    if (pending_cr_ && !in.empty()) {
        pending_cr_ = false;
        if (in[0] == '\n') {
            stage2('\n', out);
            i = 1;
        } else {
            stage2('\r', out);
        }
    }
    if (!mboxrd_) {
        drop_crs(in.substr(i), out);
        return;
    }
    while (i < in.size()) {
        const char c = in[i];
        if (c == '\r') {
            if (i + 1 == in.size()) {
                pending_cr_ = true;  // CRLF may be split between chunks
                break;
            }
            if (in[i + 1] == '\n') {
                stage2('\n', out);
                i += 2;
            } else {
                stage2('\r', out);
                ++i;
            }
            continue;
        }
        if (mboxrd_ && line_start_) {  // deciding whether the line needs a '>'
            stage2(c, out);
            ++i;
            continue;
        }
        // Inside a line: copy up to the next CR in one go (for mbox, only
        // through the next LF: a new line starts after it).
        const void* cr = std::memchr(base + i, '\r', in.size() - i);
        std::size_t stop = cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - base) : in.size();
        if (mboxrd_) {
            if (const void* lf = std::memchr(base + i, '\n', stop - i)) {
                stop = static_cast<std::size_t>(static_cast<const char*>(lf) - base) + 1;
                line_start_ = true;
            }
        }
        put(out, in.substr(i, stop - i));
        i = stop;
    }
}

void line_converter::finish(std::string& out) {
    if (pending_cr_) {
        pending_cr_ = false;
        stage2('\r', out);
    }
    put(out, head_);
    head_.clear();
}

std::string envelope_sender(std::string_view headers) {
    // The header block ends at the first empty line.
    const auto end = headers.find("\n\n");
    if (end != std::string_view::npos) headers = headers.substr(0, end + 1);
    for (std::size_t pos = 0; pos < headers.size();) {
        auto eol = headers.find('\n', pos);
        if (eol == std::string_view::npos) eol = headers.size();
        std::string_view line = headers.substr(pos, eol - pos);
        pos = eol + 1;
        constexpr std::string_view name = "return-path:";
        if (line.size() < name.size()) continue;
        bool match = true;
        for (std::size_t i = 0; i < name.size() && match; ++i)
            match = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i]))) == name[i];
        if (!match) continue;
        std::string_view v = line.substr(name.size());
        const auto lt = v.find('<');
        const auto gt = v.find('>', lt == std::string_view::npos ? 0 : lt);
        if (lt != std::string_view::npos && gt != std::string_view::npos) v = v.substr(lt + 1, gt - lt - 1);
        std::string addr;
        for (char c : v) {
            // One token with no blanks or controls, as the From line needs.
            if (static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f) addr += c;
        }
        return addr.empty() ? "MAILER-DAEMON" : addr;
    }
    return "MAILER-DAEMON";
}

error_code write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

error_code sync_directory(const std::string& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return last_error();
    if (::fsync(fd.get()) != 0) return last_error();
    return {};
}

std::unique_ptr<destination> make_maildir(const std::string& directory, error_code& ec) {
    auto d = std::make_unique<maildir>(directory);
    ec = d->prepare();
    if (ec) return nullptr;
    return d;
}

std::unique_ptr<destination> make_mbox(const std::string& file, const std::string& spool_directory,
                                       unsigned lock_timeout_ms, error_code& ec) {
    // Fail now, not at the first message, when the file cannot be written.
    fd_guard fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (fd.get() < 0) {
        ec = last_error();
        return nullptr;
    }
    ec = {};
    return std::make_unique<mbox>(file, spool_directory, lock_timeout_ms);
}

std::unique_ptr<destination> make_mda(const std::string& command, const std::string& spool_directory,
                                      error_code& ec) {
    ec = {};
    if (command.empty()) {
        ec = sys(EINVAL);
        return nullptr;
    }
    return std::make_unique<mda>(command, spool_directory);
}

}  // namespace pop3fetch
