#ifndef POP3FETCH_UID_STATE_HPP
#define POP3FETCH_UID_STATE_HPP

// Which messages of an account were delivered before, by UID.
//
// Files in the state directory, per account (KEY is the escaped account):
//   KEY.uids     the state: a header, one UID a line, and a trailer with the
//                count and a checksum; replaced atomically (temp file,
//                fsync, rename, fsync of the directory)
//   KEY.journal  UIDs delivered since the state was last written, one a
//                line, each appended and fdatasync'd right after the message
//                itself was stored durably
//   KEY.lock     held (flock) while a run uses the account
// A state or journal that does not parse is refused (errc::state_corrupt),
// never taken as empty: that would fetch every message again. Only the
// journal's last line may be cut short (a crash while appending it); that
// line is ignored.

#include "errors.hpp"
#include "group_sync.hpp"

#include <pop3/error.hpp>

#include <mutex>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>

namespace pop3fetch {

using pop3::error_code;

class uid_state {
public:
    ~uid_state();
    uid_state(const uid_state&) = delete;
    uid_state& operator=(const uid_state&) = delete;

    /// Opens (and locks) the state of `account` in `directory`, made when
    /// missing. Errors: state_in_use, state_corrupt, or the system's.
    static error_code open(const std::string& directory, const std::string& account,
                           std::unique_ptr<uid_state>& out, std::string& detail);

    bool contains(const std::string& uid) const;
    std::size_t size() const;

    /// Records a delivered message's UID durably (journal append, then
    /// fdatasync). Safe from any thread.
    error_code record(const std::string& uid);
    /// Records several at once: one append, one fdatasync. EINVAL, and
    /// nothing written, when one is not a UID UIDL can give. Like record(),
    /// an error leaves the messages stored: a later run may fetch them again.
    error_code record_all(std::span<const std::string* const> uids);

    /// Writes the state anew and empties the journal. With `on_server`,
    /// UIDs no longer on the server are forgotten.
    error_code save(const std::unordered_set<std::string>* on_server);

    /// Closes the journal and releases the lock (after the last save); the
    /// UIDs stay readable, record() fails.
    void release();

    /// The file name stem for an account ("alice%40example.org@host:110").
    static std::string key(std::string_view account);
    const std::string& state_path() const noexcept { return state_path_; }

private:
    uid_state() = default;
    error_code load(std::string& detail);

    mutable std::mutex mutex_;
    std::string dir_;
    std::string state_path_;
    std::string journal_path_;
    int lock_fd_ = -1;
    int journal_fd_ = -1;
    std::unordered_set<std::string> uids_;
    bool dirty_ = false;
    group_sync journal_sync_;
};

}  // namespace pop3fetch

#endif
