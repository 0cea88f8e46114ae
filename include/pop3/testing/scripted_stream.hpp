#ifndef POP3_TESTING_SCRIPTED_STREAM_HPP
#define POP3_TESTING_SCRIPTED_STREAM_HPP

// An Asio stream with no socket behind it: what the "server" sends is a
// script of chunks (one per read) and errors, and what the client writes is
// recorded. For unit tests of anything that speaks POP3 over a stream:
// replies split at any offset, a failure injected at any step.
//
//   pop3::testing::scripted_stream stream(ioc.get_executor());
//   auto remote = stream.remote();   // keeps working after the stream moves
//   remote.push("+OK ready\r\n");
//   auto s = pop3::session::over(std::move(stream));

#include <pop3/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pop3::testing {

class scripted_stream {
    using io_handler = boost::asio::any_completion_handler<void(error_code, std::size_t)>;

    struct state {
        boost::asio::any_io_executor ex;
        std::deque<std::variant<std::string, error_code>> script;
        std::string written;
        std::size_t max_write = 0;  // 0: writes take everything
        std::function<void(std::string_view)> on_write;
        std::size_t reads = 0;
        bool closed = false;
        io_handler pending_read;
        boost::asio::mutable_buffer pending_buffer;

        void complete_read() {
            if (!pending_read || (script.empty() && !closed)) return;
            io_handler h(std::move(pending_read));
            error_code ec;
            std::size_t n = 0;
            if (closed) {
                ec = boost::asio::error::operation_aborted;
            } else if (auto* bytes = std::get_if<std::string>(&script.front())) {
                n = std::min(bytes->size(), pending_buffer.size());
                std::copy_n(bytes->data(), n, static_cast<char*>(pending_buffer.data()));
                bytes->erase(0, n);
                if (bytes->empty()) script.pop_front();
            } else {
                ec = std::get<error_code>(script.front());
                script.pop_front();
            }
            ++reads;
            boost::asio::post(ex, boost::asio::append(std::move(h), ec, n));
        }
    };

public:
    using executor_type = boost::asio::any_io_executor;

    /// The test's side: script what the server sends, read what the client wrote.
    class remote_end {
    public:
        /// Bytes for the client's next read (one read takes one chunk at most).
        void push(std::string bytes) {
            s_->script.emplace_back(std::move(bytes));
            s_->complete_read();
        }
        /// Each byte in a read of its own.
        void push_bytewise(const std::string& bytes) {
            for (char c : bytes) s_->script.emplace_back(std::string(1, c));
            s_->complete_read();
        }
        /// The next read fails with `ec` (boost::asio::error::eof for EOF).
        void push_error(error_code ec) {
            s_->script.emplace_back(ec);
            s_->complete_read();
        }
        /// Called with the octets of every write as it happens, so the
        /// script can answer a command once it has been written.
        void on_write(std::function<void(std::string_view)> f) { s_->on_write = std::move(f); }
        /// Answers each complete command line the client writes with the
        /// next of `replies`, as a server would.
        void answer_lines(std::vector<std::string> replies) {
            auto queue = std::make_shared<std::deque<std::string>>(replies.begin(), replies.end());
            // A weak reference: the state owns this callback.
            on_write([weak = std::weak_ptr<state>(s_), queue](std::string_view chunk) {
                auto s = weak.lock();
                if (!s) return;
                remote_end self(s);
                for (char c : chunk) {
                    if (c != '\n' || queue->empty()) continue;
                    self.push(std::move(queue->front()));
                    queue->pop_front();
                }
            });
        }
        /// Caps every write at `n` octets, to exercise partial writes.
        void set_max_write(std::size_t n) { s_->max_write = n; }
        const std::string& written() const { return s_->written; }
        void clear_written() { s_->written.clear(); }
        std::size_t reads() const { return s_->reads; }
        bool closed() const { return s_->closed; }

    private:
        friend class scripted_stream;
        explicit remote_end(std::shared_ptr<state> s) : s_(std::move(s)) {}
        std::shared_ptr<state> s_;
    };

    explicit scripted_stream(executor_type ex) : s_(std::make_shared<state>()) { s_->ex = std::move(ex); }

    remote_end remote() const { return remote_end(s_); }
    executor_type get_executor() const { return s_->ex; }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
            [s = s_](auto handler, boost::asio::mutable_buffer buffer) {
                io_handler(std::move(handler)).swap(s->pending_read);
                s->pending_buffer = buffer;
                s->complete_read();
            },
            token, *boost::asio::buffer_sequence_begin(buffers));
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
            [s = s_](auto handler, boost::asio::const_buffer buffer) {
                std::size_t n = buffer.size();
                if (s->max_write != 0) n = std::min(n, s->max_write);
                error_code ec;
                if (s->closed) {
                    ec = boost::asio::error::operation_aborted;
                    n = 0;
                } else {
                    s->written.append(static_cast<const char*>(buffer.data()), n);
                    if (s->on_write) s->on_write(std::string_view(static_cast<const char*>(buffer.data()), n));
                }
                boost::asio::post(s->ex, boost::asio::append(std::move(handler), ec, n));
            },
            token, *boost::asio::buffer_sequence_begin(buffers));
    }

    void close() {
        s_->closed = true;
        s_->complete_read();
    }

private:
    std::shared_ptr<state> s_;
};

}  // namespace pop3::testing

#endif
