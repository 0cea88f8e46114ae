#ifndef POP3_PIPELINE_HPP
#define POP3_PIPELINE_HPP

// The pipelining scheduler (RFC 2449 PIPELINING), with no I/O in it.
//
// Commands move waiting -> in flight -> answered. Admission moves the oldest
// waiting command into the window and appends its bytes to the output; at
// most `depth` commands are in flight, and their expected reply bytes stay
// within the byte budget (one command is always let in, however large).
// A busy window is refilled an eighth of its depth at a time, so that one
// write carries many commands (silly-window avoidance, as in TCP).
// A barrier command (a login step, STLS, QUIT) lets nothing in behind it
// until it is answered, so the state a command runs in is known when it is
// admitted. Replies are matched to in-flight commands strictly in order.
// A cancelled command that is already in flight is abandoned: its reply is
// still read, then dropped, so the stream stays in step.

#include <pop3/command.hpp>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <deque>
#include <string>
#include <string_view>
#include <utility>

namespace pop3 {

/// Commands in flight when the server advertises PIPELINING and the user
/// set no depth. Measured with bench_pipelining_delay (1,000 messages of
/// about 4 KiB): at 20 ms round trip, depth 64 takes 0.41 s, 256 takes
/// 0.17 s, 1024 takes 0.11 s; at 0 ms every depth from 64 up runs at the
/// same speed. 256 takes most of the gain while keeping what a server must
/// buffer small (about 2.5 KB of commands).
inline constexpr std::size_t default_pipeline_depth = 256;

struct pipeline_options {
    /// Commands in flight at most; 0 means automatic: 1 until the server
    /// advertises PIPELINING, default_pipeline_depth after.
    std::size_t depth = 0;
    /// Expected reply bytes in flight at most (from LIST sizes); 0 means no
    /// budget. One command is always admitted, whatever its size.
    std::uint64_t reply_byte_budget = 0;
};

/// A command as the scheduler sees it: its bytes, how its reply is framed,
/// and what the driver attaches to it (`Payload`).
template <class Payload>
struct pipelined_command {
    Payload payload{};
    std::string wire;              ///< encoded command, CRLF included; empty for the greeting
    reply_shape shape = reply_shape::single_line;
    std::uint64_t expected_reply = 0;  ///< estimate of reply octets, for the byte budget
    bool barrier = false;
    bool abandoned = false;        ///< cancelled after admission: reply read and dropped
    bool pipelined = false;        ///< admitted while another command was unanswered
    std::uint64_t wire_end = 0;    ///< stream offset just past its bytes, set on admission
};

template <class Payload>
class pipeline {
public:
    using command = pipelined_command<Payload>;

    void set_depth(std::size_t depth) noexcept { depth_ = depth == 0 ? 1 : depth; }
    std::size_t depth() const noexcept { return depth_; }
    /// The fewest free slots a busy window is refilled with: depth / 8,
    /// at least 1 (so up to depth 15, a command per free slot).
    std::size_t refill_step() const noexcept { return std::max<std::size_t>(1, depth_ / 8); }
    void set_byte_budget(std::uint64_t budget) noexcept { budget_ = budget; }

    /// Queues a command; it waits until admitted.
    void enqueue(command c) {
        queue_.push_back(std::move(c));
        peak_ = std::max(peak_, queue_.size());
    }

    /// Queues a command ahead of every waiting one (a SASL continuation,
    /// which belongs to the exchange in progress).
    void enqueue_front(command c) {
        queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(in_flight_), std::move(c));
        peak_ = std::max(peak_, queue_.size());
    }

    /// The oldest waiting command, if the window lets it in now; nullptr
    /// otherwise. The driver then calls admit() or drop_waiting(), and asks
    /// again until it gets nullptr (a refill, once begun, fills the window).
    command* admissible() noexcept {
        command* next = next_admissible();
        refilling_ = next != nullptr;
        return next;
    }

    /// Moves the command admissible() returned into the window; its bytes
    /// join the pending output.
    void admit() {
        command& c = queue_[in_flight_];
        c.pipelined = in_flight_ > 0;
        ++in_flight_;
        out_.append(c.wire);
        c.wire_end = written_total_ + out_.size() - out_written_;
        bytes_in_flight_ += c.expected_reply;
        std::string().swap(c.wire);  // the bytes live in the output now
    }

    /// Removes the command admissible() returned without sending it (a
    /// command refused in the current state, or cancelled while waiting).
    command drop_waiting() {
        command c = std::move(queue_[in_flight_]);
        queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(in_flight_));
        return c;
    }

    /// Bytes admitted and not yet written, in order; may span many commands.
    std::string_view pending_output() const noexcept {
        return std::string_view(out_).substr(out_written_);
    }

    /// Records that the first `n` bytes of pending_output() were written.
    void on_written(std::size_t n) noexcept {
        out_written_ += n;
        written_total_ += n;
        if (out_written_ == out_.size()) {
            out_.clear();
            out_written_ = 0;
        }
    }

    /// True when every byte of the command at `index` in the window is written.
    bool written(std::size_t index) const noexcept { return queue_[index].wire_end <= written_total_; }

    /// The oldest in-flight command: the one the next reply belongs to.
    command* front_in_flight() noexcept { return in_flight_ == 0 ? nullptr : &queue_.front(); }

    /// Pops the oldest in-flight command once its reply is complete.
    command answered() {
        command c = std::move(queue_.front());
        queue_.pop_front();
        --in_flight_;
        bytes_in_flight_ -= c.expected_reply;
        return c;
    }

    /// Cancels every command whose payload matches `pred`: a waiting one is
    /// removed, an in-flight one is marked abandoned (its reply will still
    /// be read, then dropped). `on_cancel(payload)` is called once for each
    /// newly cancelled command, before a removed one is destroyed. Returns
    /// how many were cancelled.
    template <class Pred, class OnCancel>
    std::size_t cancel_where(Pred pred, OnCancel on_cancel) {
        std::size_t count = 0;
        for (std::size_t i = 0; i < queue_.size();) {
            command& c = queue_[i];
            if (!pred(c.payload) || c.abandoned) {
                ++i;
                continue;
            }
            ++count;
            on_cancel(c.payload);
            if (i < in_flight_) {
                c.abandoned = true;
                ++i;
            } else {
                queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        return count;
    }

    std::size_t in_flight() const noexcept { return in_flight_; }
    std::size_t waiting() const noexcept { return queue_.size() - in_flight_; }
    bool empty() const noexcept { return queue_.empty(); }
    std::uint64_t bytes_in_flight() const noexcept { return bytes_in_flight_; }

    /// Every command, in flight first then waiting, in order (for failing
    /// them all when the stream breaks). Leaves the pipeline empty.
    std::deque<command> take_all() {
        std::deque<command> all;
        all.swap(queue_);
        in_flight_ = 0;
        bytes_in_flight_ = 0;
        out_.clear();
        out_written_ = 0;
        return all;
    }

    /// Frees what a burst of commands grew (an idle session keeps a few
    /// hundred bytes). What one command at a time needs is kept: freeing
    /// and allocating it again at every idle moment cost more than it saved.
    void shrink() {
        if (out_.empty() && out_.capacity() > kept_output) std::string().swap(out_);
        if (queue_.empty() && peak_ > kept_commands) std::deque<command>().swap(queue_);
        if (queue_.empty()) peak_ = 0;
    }

private:
    command* next_admissible() noexcept {
        if (in_flight_ == queue_.size()) return nullptr;
        if (in_flight_ >= depth_) return nullptr;
        if (in_flight_ > 0) {
            if (queue_[in_flight_ - 1].barrier) return nullptr;
            // A busy window is refilled in steps of an eighth of its depth
            // (or whatever is waiting, if less), not a command per reply: a
            // write, a TLS record and a server wakeup then carry many
            // commands, while seven eighths of the window stay in flight.
            const std::size_t waiting = queue_.size() - in_flight_;
            if (!refilling_ && depth_ - in_flight_ < std::min(waiting, refill_step())) return nullptr;
            const command& next = queue_[in_flight_];
            if (budget_ != 0 && next.expected_reply > budget_ - std::min(budget_, bytes_in_flight_))
                return nullptr;
        }
        return &queue_[in_flight_];
    }

    static constexpr std::size_t kept_output = 256;
    // A deque holds at least one block of 512 octets (libstdc++): as many
    // commands as fit there cost nothing more to keep.
    static constexpr std::size_t kept_commands = sizeof(command) < 512 ? 512 / sizeof(command) : 1;

    std::deque<command> queue_;  // [0, in_flight_) in flight, the rest waiting
    std::size_t peak_ = 0;       // most commands queued since the last shrink
    std::size_t in_flight_ = 0;
    std::size_t depth_ = 1;
    bool refilling_ = false;  // admissible() let one in: the refill goes on
    std::uint64_t budget_ = 0;
    std::uint64_t bytes_in_flight_ = 0;
    std::string out_;
    std::size_t out_written_ = 0;
    std::uint64_t written_total_ = 0;
};

}  // namespace pop3

#endif
