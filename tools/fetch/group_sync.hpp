#ifndef POP3FETCH_GROUP_SYNC_HPP
#define POP3FETCH_GROUP_SYNC_HPP

// Group commit: threads that each need the same file or directory flushed
// share one fsync. A caller makes its change (a link, an append), then
// calls sync(); it returns once an fsync that started after the change has
// finished, with that fsync's result. While one fsync runs, later callers
// queue up and the next fsync covers them all.

#include <pop3/error.hpp>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

namespace pop3fetch {

class group_sync {
public:
    pop3::error_code sync(const std::function<pop3::error_code()>& flush) {
        std::unique_lock lock(mutex_);
        const std::uint64_t ticket = ++requested_;
        for (;;) {
            if (completed_ >= ticket) {
                for (const auto& [target, ec] : results_)
                    if (target >= ticket) return ec;
                return {};  // trimmed long ago: it succeeded or someone saw the error
            }
            if (!busy_) {
                busy_ = true;
                const std::uint64_t target = requested_;
                lock.unlock();
                const pop3::error_code ec = flush();
                lock.lock();
                busy_ = false;
                completed_ = target;
                results_.emplace_back(target, ec);
                while (results_.size() > 256) results_.pop_front();
                cv_.notify_all();
                continue;
            }
            cv_.wait(lock);
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::uint64_t requested_ = 0;
    std::uint64_t completed_ = 0;
    bool busy_ = false;
    std::deque<std::pair<std::uint64_t, pop3::error_code>> results_;
};

}  // namespace pop3fetch

#endif
