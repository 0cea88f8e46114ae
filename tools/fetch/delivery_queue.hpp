#ifndef POP3FETCH_DELIVERY_QUEUE_HPP
#define POP3FETCH_DELIVERY_QUEUE_HPP

// Runs delivery jobs on a thread pool with as many workers as the storage
// needs. Each worker drains the queue, so a fast file system (tmpfs, a
// cached disk) keeps one or two workers busy instead of waking a sleeping
// thread for every job (a futex wake and a context switch each). When jobs
// block for long (fsync on a real disk: the thread sleeps in the kernel),
// more workers join, up to the pool's size, so that fsyncs overlap and
// group commit (group_sync.hpp) has company to batch.

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include <sys/resource.h>

namespace pop3fetch {

class delivery_queue {
public:
    /// A pool of `threads` threads, as many workers at most.
    explicit delivery_queue(std::size_t threads)
        : pool_(std::max<std::size_t>(1, threads)), max_workers_(std::max<std::size_t>(1, threads)) {}
    ~delivery_queue() { pool_.join(); }
    delivery_queue(const delivery_queue&) = delete;
    delivery_queue& operator=(const delivery_queue&) = delete;

    /// Waits for every job.
    void join() { pool_.join(); }
    /// Runs `f` on the pool, outside the queue (rare, long jobs).
    template <class F>
    void post(F f) {
        boost::asio::post(pool_, std::move(f));
    }

    /// Queues a job (any callable, move-only ones too).
    template <class F>
    void push(F f) {
        std::unique_ptr<job_base> job(new job_of<F>(std::move(f)));
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(job));
        // Another worker when the queue outgrows the running ones and jobs
        // have been slow; otherwise the running workers will get to it.
        if (active_ == 0 || (active_ < wanted_ && jobs_.size() > active_)) {
            ++active_;
            boost::asio::post(pool_, [this] { drain(); });
        }
    }

private:
    struct job_base {
        virtual ~job_base() = default;
        virtual void run() = 0;
    };
    template <class F>
    struct job_of final : job_base {
        explicit job_of(F f) : f_(std::move(f)) {}
        void run() override { f_(); }
        F f_;
    };

    void drain() {
        using clock = std::chrono::steady_clock;
        for (;;) {
            std::unique_ptr<job_base> job;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (jobs_.empty()) {
                    --active_;
                    return;
                }
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
            const auto start = clock::now();
            const long waits_before = voluntary_waits();
            job->run();
            job.reset();
            // Blocked: long, and the thread slept in the kernel (an fsync
            // waiting for the disk). A long job that only computed, or was
            // preempted on a busy machine, gets no company: more threads
            // would not make it finish sooner.
            const bool blocked =
                clock::now() - start > std::chrono::milliseconds(2) && voluntary_waits() != waits_before;
            std::lock_guard<std::mutex> lock(mutex_);
            // Slow jobs: the storage waits (fsync); more workers overlap the
            // waits. Fast ones: fewer workers, fewer wakeups.
            if (blocked) wanted_ = max_workers_;
            else if (wanted_ > 1 && ++fast_streak_ >= 64) {
                wanted_ /= 2;
                fast_streak_ = 0;
            }
            if (blocked) fast_streak_ = 0;
        }
    }

    /// How often this thread has gone to sleep waiting (for the disk, a
    /// lock): getrusage's voluntary context switches.
    static long voluntary_waits() noexcept {
        rusage u{};
        return ::getrusage(RUSAGE_THREAD, &u) == 0 ? u.ru_nvcsw : 0;
    }

    boost::asio::thread_pool pool_;
    const std::size_t max_workers_;
    std::mutex mutex_;
    std::deque<std::unique_ptr<job_base>> jobs_;
    std::size_t active_ = 0;
    std::size_t wanted_ = 1;
    std::size_t fast_streak_ = 0;
};

}  // namespace pop3fetch

#endif
