#include "uid_state.hpp"
#include "delivery.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pop3fetch {
namespace {

constexpr std::string_view header = "pop3fetch-uids 1";

error_code last_error() { return error_code(errno, boost::system::system_category()); }

// The failure a test injected at step `s` (set_fault_hook), if any.
error_code fault_at(step s) {
    const int e = injected_fault(s);
    return e != 0 ? error_code(e, boost::system::system_category()) : error_code();
}

std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

bool valid_uid(std::string_view uid) {
    if (uid.empty() || uid.size() > 70) return false;
    return std::all_of(uid.begin(), uid.end(),
                       [](char c) { return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7e; });
}

error_code read_file(const std::string& path, std::string& out, bool& exists) {
    exists = false;
    out.clear();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? error_code() : last_error();
    exists = true;
    char buf[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const auto ec = last_error();
            ::close(fd);
            return ec;
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return {};
}

std::vector<std::string_view> split_lines(std::string_view s, bool& trailing_partial) {
    std::vector<std::string_view> lines;
    trailing_partial = false;
    while (!s.empty()) {
        const auto nl = s.find('\n');
        if (nl == std::string_view::npos) {
            trailing_partial = true;
            lines.push_back(s);
            break;
        }
        lines.push_back(s.substr(0, nl));
        s.remove_prefix(nl + 1);
    }
    return lines;
}

std::string hex(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

uid_state::~uid_state() {
    if (journal_fd_ >= 0) ::close(journal_fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string uid_state::key(std::string_view account) {
    std::string out;
    for (unsigned char c : account) {
        if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '@' || c == '+' || c == ':') {
            out += static_cast<char>(c);
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    if (out.empty() || out[0] == '.') out.insert(0, "%");
    return out;
}

error_code uid_state::open(const std::string& directory, const std::string& account,
                           std::unique_ptr<uid_state>& out, std::string& detail) {
    std::unique_ptr<uid_state> s(new uid_state());
    s->dir_ = directory;
    // Make the directory and its parents (XDG_STATE_HOME may not exist yet).
    for (std::size_t pos = 1; pos <= directory.size(); ++pos) {
        if (pos == directory.size() || directory[pos] == '/') {
            const std::string part = directory.substr(0, pos);
            if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
                detail = "making " + part;
                return last_error();
            }
        }
    }
    const std::string stem = directory + "/" + key(account);
    s->state_path_ = stem + ".uids";
    s->journal_path_ = stem + ".journal";
    const std::string lock_path = stem + ".lock";
    s->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd_ < 0) {
        detail = "opening " + lock_path;
        return last_error();
    }
    if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        detail = lock_path;
        return errno == EWOULDBLOCK ? error_code(errc::state_in_use) : last_error();
    }
    if (auto ec = s->load(detail)) return ec;
    // The journal is opened at the first record(): a run over ten thousand
    // accounts holds one descriptor per account (the lock), not two.
    out = std::move(s);
    return {};
}

void uid_state::release() {
    std::lock_guard g(mutex_);
    if (journal_fd_ >= 0) ::close(journal_fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
    journal_fd_ = lock_fd_ = -1;
}

error_code uid_state::load(std::string& detail) {
    std::string text;
    bool exists = false;
    if (auto ec = read_file(state_path_, text, exists)) {
        detail = "reading " + state_path_;
        return ec;
    }
    if (exists) {
        bool partial = false;
        auto lines = split_lines(text, partial);
        detail = state_path_;
        if (partial || lines.size() < 2 || lines.front() != header) return errc::state_corrupt;
        const std::string_view trailer = lines.back();
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (std::size_t i = 1; i + 1 < lines.size(); ++i) {
            if (!valid_uid(lines[i])) return errc::state_corrupt;
            h = fnv1a(h, lines[i]);
            h = fnv1a(h, "\n");
            uids_.emplace(lines[i]);
        }
        const std::string expect = "end " + std::to_string(lines.size() - 2) + " " + hex(h);
        if (trailer != expect) return errc::state_corrupt;
        detail.clear();
    }
    if (auto ec = read_file(journal_path_, text, exists)) {
        detail = "reading " + journal_path_;
        return ec;
    }
    if (exists && !text.empty()) {
        bool partial = false;
        auto lines = split_lines(text, partial);
        // A last line without its newline is an append cut short by a
        // crash: its message may have been stored, so it is fetched again
        // (the documented duplicate window), never lost.
        if (partial) lines.pop_back();
        for (auto line : lines) {
            if (!valid_uid(line)) {
                detail = journal_path_;
                return errc::state_corrupt;
            }
            uids_.emplace(line);
        }
        dirty_ = true;
    }
    return {};
}

bool uid_state::contains(const std::string& uid) const {
    std::lock_guard g(mutex_);
    return uids_.count(uid) != 0;
}

std::size_t uid_state::size() const {
    std::lock_guard g(mutex_);
    return uids_.size();
}

error_code uid_state::record(const std::string& uid) {
    const std::string* one[] = {&uid};
    return record_all(one);
}

error_code uid_state::record_all(std::span<const std::string* const> uids) {
    if (uids.empty()) return {};
    for (const std::string* uid : uids)
        if (!valid_uid(*uid)) return error_code(EINVAL, boost::system::system_category());
    {
        std::lock_guard g(mutex_);
        if (lock_fd_ < 0) return error_code(EBADF, boost::system::system_category());  // released
        if (journal_fd_ < 0) {
            journal_fd_ = ::open(journal_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (journal_fd_ < 0) return last_error();
        }
        std::string lines;
        for (const std::string* uid : uids) {
            lines += *uid;
            lines += '\n';
        }
        if (auto ec = fault_at(step::journal_write)) return ec;
        if (auto ec = write_all(journal_fd_, lines)) return ec;
        for (const std::string* uid : uids) uids_.insert(*uid);
        dirty_ = true;
    }
    // Concurrent deliveries of the account share one fdatasync.
    return journal_sync_.sync([this] {
        if (auto ec = fault_at(step::journal_sync)) return ec;
        return ::fdatasync(journal_fd_) == 0 ? error_code() : last_error();
    });
}

error_code uid_state::save(const std::unordered_set<std::string>* on_server) {
    std::lock_guard g(mutex_);
    if (on_server != nullptr) {
        for (auto it = uids_.begin(); it != uids_.end();) {
            if (on_server->count(*it) == 0) {
                it = uids_.erase(it);
                dirty_ = true;
            } else {
                ++it;
            }
        }
    }
    if (!dirty_) return {};
    std::vector<std::string_view> sorted(uids_.begin(), uids_.end());
    std::sort(sorted.begin(), sorted.end());
    std::string text(header);
    text += '\n';
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (auto uid : sorted) {
        text.append(uid);
        text += '\n';
        h = fnv1a(h, uid);
        h = fnv1a(h, "\n");
    }
    text += "end " + std::to_string(sorted.size()) + " " + hex(h) + "\n";

    const std::string tmp = state_path_ + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    error_code ec = fault_at(step::state_write);
    if (!ec) ec = write_all(fd, text);
    if (!ec) ec = fault_at(step::state_fsync);
    if (!ec && ::fsync(fd) != 0) ec = last_error();
    ::close(fd);
    if (!ec) ec = fault_at(step::state_rename);
    if (!ec && ::rename(tmp.c_str(), state_path_.c_str()) != 0) ec = last_error();
    if (!ec) ec = sync_directory(dir_);
    if (ec) {
        ::unlink(tmp.c_str());
        return ec;  // the old state and the journal still hold everything
    }
    // The state holds the journal's UIDs now: empty it (one left by an
    // earlier run too, which load() read).
    const int jfd = journal_fd_ >= 0 ? journal_fd_ : ::open(journal_path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (jfd >= 0) {
        const bool ok = ::ftruncate(jfd, 0) == 0 && ::fsync(jfd) == 0;
        const error_code truncate_ec = ok ? error_code() : last_error();
        if (jfd != journal_fd_) ::close(jfd);
        if (!ok) return truncate_ec;
    } else if (errno != ENOENT) {
        return last_error();
    }
    dirty_ = false;
    return {};
}

}  // namespace pop3fetch
