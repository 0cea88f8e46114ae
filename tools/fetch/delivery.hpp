#ifndef POP3FETCH_DELIVERY_HPP
#define POP3FETCH_DELIVERY_HPP

// Where pop3fetch puts messages, durably. A message is received into a
// file (the Maildir's tmp/, or a spool file for mbox and MDA) chunk by
// chunk, then delivered: only when deliver() returns without error is the
// message stored for good, and only then may the server delete it.
//
// Messages are stored with LF line endings (CRLF from the wire becomes LF;
// a lone CR is kept), as Maildir, mbox and MDAs expect.
//
// Every call here may block on the disk: the fetcher runs them on its
// delivery thread pool, never on the network thread.

#include <pop3/error.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

namespace pop3fetch {

using pop3::error_code;

/// The durable steps a delivery takes, for fault injection in tests.
enum class step {
    create, write, fsync, link, dir_fsync, lock, mda,  // delivery
    journal_write, journal_sync, state_write, state_fsync, state_rename,  // the UID state (uid_state)
};

/// Tests set a hook that returns an errno to fail a step with (0: go on).
/// It is consulted before each step by every delivery in the process.
void set_fault_hook(std::function<int(step)> hook);
/// The errno the hook injects for a step, or 0 (no hook, or none for it).
int injected_fault(step s);

/// CRLF -> LF, and for mbox the mboxrd quoting of ">*From " lines; works
/// across chunk boundaries.
class line_converter {
public:
    explicit line_converter(bool mboxrd) : mboxrd_(mboxrd) {}
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);
    /// CRLF to LF only (not for mboxrd): converts `in` into `out`, which
    /// has room for feed_lf_room(in.size()) octets, and returns how many
    /// it kept.
    std::size_t feed_lf(std::string_view in, char* out);
    static constexpr std::size_t feed_lf_room(std::size_t n) noexcept { return n + 1 + drop_slack; }
    /// The last octet written to `out` (0 before any).
    char last() const noexcept { return last_; }

private:
    static constexpr std::size_t drop_slack = 32;  // how far drop_crs_into's stores may run past
    void drop_crs(std::string_view in, std::string& out);
    std::size_t drop_crs_into(std::string_view in, char* out);
    void stage2(char c, std::string& out);
    void put(std::string& out, std::string_view s);
    bool mboxrd_;
    bool pending_cr_ = false;
    bool line_start_ = true;
    std::string head_;  // the start of a line while deciding whether it needs quoting
    char last_ = 0;
};

/// One message being received.
class incoming {
public:
    virtual ~incoming() = default;
    /// Stores the next chunk (wire form: CRLF line endings).
    virtual error_code write(std::string_view chunk) = 0;
    /// Octets stored so far (after conversion).
    virtual std::uint64_t size() const noexcept = 0;
};

class destination {
public:
    virtual ~destination() = default;
    /// Starts receiving a message for `account`.
    virtual error_code begin(const std::string& account, std::unique_ptr<incoming>& out) = 0;
    /// Stores the received message for good. On error nothing is stored
    /// (or what was half-stored is rolled back) and `detail` says where.
    virtual error_code deliver(incoming& message, std::string& detail) = 0;
    /// Delivers several messages, each as deliver() would: `results[i]`
    /// and `details[i]` are those of `messages[i]`. A Maildir shares one
    /// fsync of new/ among them; the others deliver one after another.
    virtual void deliver_all(std::span<incoming* const> messages, std::span<error_code> results,
                             std::span<std::string> details) {
        for (std::size_t i = 0; i < messages.size(); ++i) results[i] = deliver(*messages[i], details[i]);
    }
    /// Drops a message that will not be delivered (cut, or refused).
    virtual void discard(incoming& message) noexcept = 0;
    /// "Maildir /home/u/Maildir", for messages.
    virtual std::string describe() const = 0;
};

/// Maildir: the message is written to tmp/ under a unique name, fsynced,
/// moved into new/ (never over an existing file), and new/ is fsynced.
/// The directory and its tmp/ new/ cur/ are made when missing.
std::unique_ptr<destination> make_maildir(const std::string& directory, error_code& ec);

/// mbox: a "From " line from the envelope sender (Return-Path) and the
/// time, the message with mboxrd quoting, and a blank line, appended under
/// an fcntl lock (waiting at most lock_timeout_ms), fsynced; a failed
/// append is truncated away.
std::unique_ptr<destination> make_mbox(const std::string& file, const std::string& spool_directory,
                                       unsigned lock_timeout_ms, error_code& ec);

/// MDA: `/bin/sh -c COMMAND` with the message on its standard input; exit
/// status 0 means delivered. The message is spooled to a file first, so a
/// slow MDA never holds up the network.
std::unique_ptr<destination> make_mda(const std::string& command, const std::string& spool_directory,
                                      error_code& ec);

/// The envelope sender for a "From " line: the address in Return-Path, or
/// MAILER-DAEMON.
std::string envelope_sender(std::string_view headers);

/// Writes all of `data` to `fd`, retrying short writes and EINTR.
error_code write_all(int fd, std::string_view data);
/// fsync of a directory.
error_code sync_directory(const std::string& path);

}  // namespace pop3fetch

#endif
