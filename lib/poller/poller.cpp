#include <pop3/poller.hpp>
#include <pop3/session.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <list>
#include <random>
#include <unordered_map>

namespace pop3 {
namespace detail {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
using asio::awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

/// Octets of messages fetched and not yet committed, across all sessions,
/// granted first come first served. A message larger than the whole budget
/// is let through alone.
class byte_budget {
public:
    byte_budget(asio::any_io_executor ex, std::uint64_t capacity) : ex_(ex), capacity_(capacity) {}

    /// Takes `n` now if it fits and nobody waits before us.
    bool try_reserve(std::uint64_t n) {
        if (!waiters_.empty() || !fits(n)) return false;
        take(n);
        return true;
    }

    /// Waits for `n`; false when the wait was cut short by cancel_waiters().
    awaitable<bool> reserve(std::uint64_t n) {
        if (waiters_.empty() && fits(n)) {
            take(n);
            co_return true;
        }
        waiter w{n, asio::steady_timer(ex_, clock::time_point::max())};
        auto it = waiters_.insert(waiters_.end(), &w);
        co_await w.timer.async_wait(tuple_awaitable);
        if (!w.granted) {
            waiters_.erase(it);
            co_return false;
        }
        co_return true;
    }

    void release(std::uint64_t n) {
        used_ -= n;
        grant();
    }

    void cancel_waiters() {
        for (waiter* w : waiters_) w->timer.cancel();
    }

    std::uint64_t used() const noexcept { return used_; }
    std::uint64_t peak() const noexcept { return peak_; }

private:
    struct waiter {
        std::uint64_t n;
        asio::steady_timer timer;
        bool granted = false;
    };
    bool fits(std::uint64_t n) const noexcept { return used_ == 0 || used_ + n <= capacity_; }
    void take(std::uint64_t n) {
        used_ += n;
        peak_ = std::max(peak_, used_);
    }
    void grant() {
        while (!waiters_.empty() && fits(waiters_.front()->n)) {
            waiter* w = waiters_.front();
            waiters_.pop_front();
            take(w->n);
            w->granted = true;
            w->timer.cancel();
        }
    }

    asio::any_io_executor ex_;
    std::uint64_t capacity_;
    std::uint64_t used_ = 0;
    std::uint64_t peak_ = 0;
    std::list<waiter*> waiters_;
};

struct account_state {
    account acct;
    account_outcome outcome;
    unsigned attempts = 0;
    clock::time_point due{};
    clock::time_point first_start{};
    clock::time_point last_login{};
    std::chrono::seconds login_delay{0};  // from CAPA LOGIN-DELAY
    bool started = false;
    bool lockstep = false;  // a pipelined session timed out: depth 1 from now on
};

}  // namespace

class poller_impl : public std::enable_shared_from_this<poller_impl> {
public:
    poller_impl(asio::any_io_executor ex, message_handler handler, poller_options options)
        : ex_(std::move(ex)),
          handler_(std::move(handler)),
          options_(std::move(options)),
          budget_(ex_, options_.max_bytes_in_flight),
          wake_(ex_),
          rng_(options_.retry.seed) {}

    void add(account a) {
        asio::post(ex_, [self = shared_from_this(), a = std::move(a)]() mutable {
            auto state = std::make_unique<account_state>();
            state->outcome.account_id = a.id;
            state->acct = std::move(a);
            if (self->running_) {
                state->due = clock::now();
                self->ready_.push_back(state.get());
                ++self->pending_;
                self->wake_.cancel();
            }
            self->accounts_.push_back(std::move(state));
        });
    }

    void start(std::chrono::milliseconds interval, asio::any_completion_handler<void(error_code)> h) {
        asio::post(ex_, [self = shared_from_this(), interval, h = std::move(h)]() mutable {
            if (self->running_) {
                asio::post(self->ex_, asio::append(std::move(h), error_code(error::wrong_state)));
                return;
            }
            self->running_ = true;
            self->stopping_ = false;
            self->interval_ = interval;
            asio::any_completion_handler<void(error_code)>(std::move(h)).swap(self->run_handler_);
            const auto now = clock::now();
            self->ready_.clear();
            self->delayed_.clear();
            for (auto& a : self->accounts_) {
                a->due = now;
                self->ready_.push_back(a.get());
            }
            self->pending_ = self->accounts_.size();
            asio::co_spawn(self->ex_, self->dispatcher(), asio::detached);
        });
    }

    void stop() {
        asio::post(ex_, [self = shared_from_this()] {
            self->stopping_ = true;
            self->budget_.cancel_waiters();
            self->wake_.cancel();
        });
    }

    poller_stats stats() const {
        poller_stats s = stats_;
        s.bytes_in_flight = budget_.used();
        s.peak_bytes_in_flight = budget_.peak();
        return s;
    }

private:
    // ------------------------------------------------------------------
    // Scheduling

    awaitable<void> dispatcher() {
        auto self = shared_from_this();
        for (;;) {
            const auto now = clock::now();
            // Due accounts join the ready queue in the order they fell due.
            std::stable_sort(delayed_.begin(), delayed_.end(),
                             [](const account_state* a, const account_state* b) { return a->due < b->due; });
            while (!delayed_.empty() && delayed_.front()->due <= now) {
                ready_.push_back(delayed_.front());
                delayed_.erase(delayed_.begin());
            }
            launch();
            if (stats_.active_sessions == 0 && (stopping_ || (interval_.count() == 0 && pending_ == 0))) break;
            wake_.expires_at(delayed_.empty() || stopping_ ? clock::time_point::max() : delayed_.front()->due);
            co_await wake_.async_wait(tuple_awaitable);
        }
        running_ = false;
        const error_code result = stopping_ ? error_code(asio::error::operation_aborted) : error_code();
        asio::post(ex_, asio::append(std::move(run_handler_), result));
    }

    void launch() {
        for (auto it = ready_.begin(); it != ready_.end() && !stopping_;) {
            if (stats_.active_sessions >= options_.max_sessions) break;
            account_state* a = *it;
            std::size_t& on_host = per_host_[a->acct.host];
            if (options_.max_sessions_per_host != 0 && on_host >= options_.max_sessions_per_host) {
                ++it;  // this host is full: the next account goes first
                continue;
            }
            it = ready_.erase(it);
            ++on_host;
            ++stats_.active_sessions;
            stats_.peak_sessions = std::max(stats_.peak_sessions, stats_.active_sessions);
            stats_.peak_sessions_one_host = std::max(stats_.peak_sessions_one_host, on_host);
            asio::co_spawn(ex_, attempt(a), asio::detached);
        }
    }

    awaitable<void> attempt(account_state* a) {
        auto self = shared_from_this();
        if (!a->started) {
            a->started = true;
            a->first_start = clock::now();
        }
        ++a->attempts;
        ++a->outcome.attempts;
        emit({poll_event_kind::session_started, &a->acct});
        diagnostics diag;
        const error_code ec = co_await poll_once(*a, diag);
        --per_host_[a->acct.host];
        --stats_.active_sessions;

        std::chrono::milliseconds delay{};
        if (ec && !stopping_ && a->attempts < options_.retry.max_attempts && retry_delay(*a, ec, diag, delay)) {
            a->outcome.retries.push_back({ec, diag.code(), diag.server_message(), delay});
            a->due = clock::now() + delay;
            delayed_.push_back(a);
            emit({poll_event_kind::retry_scheduled, &a->acct});
        } else {
            finish_account(*a, ec, diag);
        }
        wake_.cancel();
    }

    /// True when `ec` is worth another attempt, with the delay before it.
    bool retry_delay(const account_state& a, error_code ec, const diagnostics& diag, std::chrono::milliseconds& delay) {
        bool retry = false;
        bool login_delay = false;
        if (ec == error::server_refused) {
            switch (diag.code().kind) {
            case response_code_kind::login_delay:
                retry = login_delay = true;
                break;
            case response_code_kind::in_use:
            case response_code_kind::sys_temp:
                retry = true;
                break;
            default:  // [AUTH], [SYS/PERM], or a refusal that says nothing: not retried
                break;
            }
        } else if (is_fatal(ec)) {
            // Network trouble is retried; security failures and certificate
            // errors would fail the same way again.
            retry = ec != error::tls_required && ec != error::stls_injection && ec != error::reply_out_of_step &&
                    ec != error::unexpected_data &&
                    ec != error::certificate_pin_mismatch && ec != error::server_signature_mismatch &&
                    ec.category() != asio::error::get_ssl_category() &&
                    ec.category() != asio::ssl::error::get_stream_category();
        }
        if (!retry) return false;
        const auto& p = options_.retry;
        double factor = 1.0;
        for (unsigned i = 1; i < a.attempts; ++i) factor *= 2;
        auto base = std::chrono::duration<double, std::milli>(p.base) * factor;
        base = std::min(base, std::chrono::duration<double, std::milli>(p.max));
        std::uniform_real_distribution<double> spread(1.0 - p.jitter, 1.0);
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(base * spread(rng_));
        if (login_delay && a.login_delay.count() > 0)
            delay = std::max(delay, std::chrono::duration_cast<std::chrono::milliseconds>(a.login_delay));
        return true;
    }

    void finish_account(account_state& a, error_code ec, const diagnostics& diag) {
        a.outcome.ec = ec;
        a.outcome.diag = diag;
        a.outcome.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - a.first_start);
        ++stats_.accounts_done;
        if (options_.on_account_done) options_.on_account_done(a.outcome);
        emit({poll_event_kind::account_done, &a.acct});
        if (interval_.count() > 0 && !stopping_) {
            // Service mode: the next round, jittered, and never before the
            // server's LOGIN-DELAY has passed since the last login.
            std::uniform_real_distribution<double> spread(1.0 - options_.retry.jitter / 2, 1.0 + options_.retry.jitter / 2);
            auto next = clock::now() + std::chrono::duration_cast<clock::duration>(interval_ * spread(rng_));
            next = std::max(next, a.last_login + a.login_delay);
            a.outcome = account_outcome{};
            a.outcome.account_id = a.acct.id;
            a.outcome.pipelining_off = a.lockstep;  // it stays off for the account
            a.attempts = 0;
            a.started = false;
            a.due = next;
            delayed_.push_back(&a);
        } else {
            --pending_;
        }
    }

    void emit(const poll_event& e) {
        if (options_.on_event) options_.on_event(e);
    }

    // ------------------------------------------------------------------
    // One session

    struct batch {
        std::size_t pending = 0;
        error_code fatal;
        std::vector<std::uint64_t> to_delete;  // committed (or stored before): DELE before QUIT
        asio::steady_timer done;
        explicit batch(asio::any_io_executor ex) : done(ex, clock::time_point::max()) {}
        /// One of the `pending` is over; the last one wakes the waiter.
        void one_done() {
            if (--pending == 0) done.cancel();
        }
    };

    awaitable<error_code> poll_once(account_state& a, diagnostics& diag) {
        session_options options = a.acct.options;
        if (a.lockstep) options.pipeline.depth = 1;
        if (!options.tls_session_cache) options.tls_session_cache = options_.tls_sessions;
        session s(ex_, std::move(options));
        error_code ec = co_await poll_session(s, a, diag);
        if (ec == error::session_failed && s.last_error()) ec = s.last_error();  // the cause, not its echo
        if (ec == error::timeout && s.failed_on_pipelined_command() && !a.lockstep) {
            // A command sent behind another went unanswered: a server that
            // advertises PIPELINING and drops what follows the first
            // command. (A command sent alone that times out is a slow
            // server, not this.)
            a.lockstep = true;
            a.outcome.pipelining_off = true;
        }
        co_return ec;
    }

    awaitable<error_code> poll_session(session& s, account_state& a, diagnostics& diag) {
        if (auto [ec] = co_await s.async_connect(a.acct.host, a.acct.port, tuple_awaitable, &diag); ec) co_return ec;
        if (s.server_capabilities() == nullptr) {
            auto [ec, caps] = co_await s.async_capa(tuple_awaitable, &diag);
            if (ec && is_fatal(ec)) co_return ec;  // -ERR: an old server without CAPA
            diag.clear();
        }
        const capabilities* caps = s.server_capabilities();
        if (caps != nullptr && caps->login_delay) a.login_delay = std::chrono::seconds(caps->login_delay->seconds);
        if (auto [ec] = co_await s.async_authenticate(a.acct.creds, tuple_awaitable, &diag); ec) co_return ec;
        a.last_login = clock::now();
        emit({poll_event_kind::logged_in, &a.acct});

        std::vector<message_info> listing;
        if (caps != nullptr && caps->uidl) {
            auto [ec, l] = co_await s.async_list_uidl(tuple_awaitable, &diag);
            if (ec) co_return ec;
            listing = std::move(l);
        } else {
            auto [ec, l] = co_await s.async_list(tuple_awaitable, &diag);
            if (ec) co_return ec;
            for (const auto& e : l) listing.push_back({e.number, e.octets, {}});
        }
        std::vector<std::uint64_t> numbers;
        if (a.acct.select) {
            numbers = a.acct.select(listing);
        } else {
            for (const auto& m : listing) numbers.push_back(m.number);
        }
        std::vector<std::uint64_t> stored;
        if (!a.acct.keep && a.acct.already_stored) stored = a.acct.already_stored(listing);
        std::unordered_map<std::uint64_t, std::uint64_t> listed;  // number -> LIST size
        for (const auto& m : listing) listed.emplace(m.number, m.octets);

        batch b(ex_);
        b.pending = numbers.size();
        b.to_delete = std::move(stored);
        // The messages go out in groups, one fetch each (its RETRs
        // pipelined): a group takes every message the byte budget admits
        // now; the first message of the next waits for room. One fetch per
        // group, not per message, and callbacks instead of a coroutine per
        // message: a swarm's CPU goes into the messages, not into machinery.
        std::size_t next = 0;
        while (next < numbers.size()) {
            const std::uint64_t first = listed_octets(listed, numbers[next]);
            const bool granted = !stopping_ && !b.fatal &&
                                 (budget_.try_reserve(first) || co_await budget_.reserve(first));
            if (!granted || stopping_ || b.fatal) {
                if (granted) budget_.release(first);
                b.pending -= numbers.size() - next;  // never asked for: nothing to tell the handler
                break;
            }
            std::vector<std::uint64_t> group{numbers[next]};
            for (++next; next < numbers.size(); ++next) {
                if (!budget_.try_reserve(listed_octets(listed, numbers[next]))) break;
                group.push_back(numbers[next]);
            }
            fetch_group(s, a, std::move(group), listed, b);
        }
        while (b.pending != 0) co_await b.done.async_wait(tuple_awaitable);
        if (b.fatal) co_return b.fatal;
        // DELE only marks a message: nothing is deleted before QUIT, so the
        // deletions wait for the last commit and leave in one burst instead
        // of one write (and one server wakeup) per read of messages.
        std::uint64_t deleted = 0;
        if (!b.to_delete.empty()) {
            auto [fatal, results] = co_await s.async_delete(std::move(b.to_delete), tuple_awaitable);
            if (fatal) co_return fatal;
            for (const error_code& r : results) deleted += r ? 0 : 1;  // a DELE refused: the message stays
        }
        auto [ec] = co_await s.async_quit(tuple_awaitable, &diag);
        if (!ec) a.outcome.deleted += deleted;  // QUIT committed the deletions
        co_return ec;
    }

    /// What a message reserves of the byte budget: its LIST size.
    static std::uint64_t listed_octets(const std::unordered_map<std::uint64_t, std::uint64_t>& listed,
                                       std::uint64_t n) {
        auto it = listed.find(n);
        return it != listed.end() ? it->second : 0;
    }

    /// One fetch for a group of messages whose octets the budget granted.
    /// Each message then goes to the handler, is committed (and in delete
    /// mode noted for DELE), and gives back the octets it reserved (its
    /// LIST size, from `listed`); the batch hears of each, and of the
    /// fetch's own end.
    void fetch_group(session& s, account_state& a, std::vector<std::uint64_t> numbers,
                     const std::unordered_map<std::uint64_t, std::uint64_t>& listed, batch& b) {
        fetch_callbacks cb;
        cb.open = [this, &a](const message_info& m) { return handler_.open ? handler_.open(a.acct, m) : body_sink{}; };
        cb.done = [this, &a, &b, &listed](const message_info& m, error_code ec, const diagnostics& d) {
            if (!ec && !d.client_message().empty()) ++a.outcome.size_mismatches;  // a warning
            commit(a, m, listed_octets(listed, m.number), ec, b);
        };
        ++b.pending;  // the fetch's completion, which says whether the session broke
        s.async_fetch(std::move(numbers), std::move(cb), [&b](error_code fatal) {
            if (fatal && !b.fatal) b.fatal = fatal;
            b.one_done();
        });
    }

    /// The handler hears of every message it was sent, failed or not, so it
    /// can clean up; only a clean commit counts, and only that is deleted.
    void commit(account_state& a, const message_info& m, std::uint64_t reserved, error_code ec, batch& b) {
        auto after = [this, &a, &b, number = m.number, listed = m.octets, reserved, ec](error_code committed) {
            if (!ec && !committed) {
                ++a.outcome.messages;
                a.outcome.bytes += listed;
                emit({poll_event_kind::message_committed, &a.acct, number, listed});
                if (!a.acct.keep) b.to_delete.push_back(number);
            } else if (!is_fatal(ec)) {
                // -ERR, over the cap, or refused by the handler. A message
                // cut by a broken session is not counted: the session's
                // error says it, and the retry fetches it again.
                ++a.outcome.failed_messages;
            }
            message_finished(reserved, b);
        };
        if (!handler_.done) return after(ec);
        handler_.done(a.acct, m, ec,
                      asio::any_completion_handler<void(error_code)>(asio::bind_executor(ex_, std::move(after))));
    }

    void message_finished(std::uint64_t reserved, batch& b) {
        budget_.release(reserved);
        b.one_done();
    }

    asio::any_io_executor ex_;
    message_handler handler_;
    poller_options options_;
    byte_budget budget_;
    asio::steady_timer wake_;
    std::mt19937_64 rng_;
    std::vector<std::unique_ptr<account_state>> accounts_;
    std::deque<account_state*> ready_;
    std::vector<account_state*> delayed_;
    std::unordered_map<std::string, std::size_t> per_host_;
    poller_stats stats_;
    std::size_t pending_ = 0;
    bool running_ = false;
    bool stopping_ = false;
    std::chrono::milliseconds interval_{0};
    asio::any_completion_handler<void(error_code)> run_handler_;
};

}  // namespace detail

poller::poller(boost::asio::any_io_executor ex, message_handler handler, poller_options options)
    : impl_(std::make_shared<detail::poller_impl>(std::move(ex), std::move(handler), std::move(options))) {}

poller::~poller() { impl_->stop(); }

void poller::add(account a) { impl_->add(std::move(a)); }
void poller::stop() { impl_->stop(); }
poller_stats poller::stats() const { return impl_->stats(); }

void poller::start(detail::poller_impl* p, std::chrono::milliseconds interval,
                   boost::asio::any_completion_handler<void(error_code)> h) {
    p->start(interval, std::move(h));
}

}  // namespace pop3
