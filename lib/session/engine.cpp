#include "engine.hpp"

#include "tcp_streams.hpp"

#include <pop3/apop.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

namespace pop3::detail {
namespace asio = boost::asio;

namespace {

// The greeting: a reply no command asked for.
struct greeting_request final : typed_request<> {
    std::string text;
    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        text = s.text;
    }
    void on_end(engine& e) override {
        e.on_greeted(text, ok());
        finish(outcome());
    }
};

}  // namespace

engine::engine(asio::any_io_executor ex, session_options options)
    : ex_(std::move(ex)),
      options_(std::move(options)),
      parser_(options_.limits),
      timer_(ex_) {
    pipe_.set_depth(options_.pipeline.depth == 0 ? 1 : options_.pipeline.depth);
    read_chunk_ = std::min<std::size_t>(initial_read_chunk, std::max<std::size_t>(options_.read_size, 512));
    pipe_.set_byte_budget(options_.pipeline.reply_byte_budget);
}

// ---------------------------------------------------------------------------
// Connecting

void engine::connect(std::string host, std::string port, diagnostics* d, handler<> h) {
    if (state_ != session_state::disconnected || connecting_ || stream_)
        return complete_posted(ex_, std::move(h), error_code(error::wrong_state));
    assign_handler(connect_handler_, std::move(h));
    auto slot = connect_handler_.get_cancellation_slot();
    if (slot.is_connected()) {
        slot.assign([w = weak_from_this()](asio::cancellation_type) {
            if (auto e = w.lock()) e->fail_session(asio::error::operation_aborted);
        });
    }
    connecting_ = true;
    const auto now = clock::now();
    connect_deadline_ = now + options_.connect_timeout;
    if (options_.session_timeout.count() > 0) session_deadline_ = now + options_.session_timeout;
    touch();
    arm_timer();

    server_name_ = options_.tls_server_name.empty() ? host : options_.tls_server_name;
    port_ = port;
    connect_diag_ = d;
    if (d != nullptr) d->clear();
    std::string server_name = server_name_;
    auto on_resolved = [self = shared_from_this(), server_name = std::move(server_name)](
                           error_code ec, asio::ip::tcp::resolver::results_type results) mutable {
            self->resolver_.reset();
            if (self->state_ == session_state::failed) return;
            if (ec) return self->connect_done(ec);
            if (self->options_.mode == transport::implicit_tls) {
                if (!self->options_.tls_context) self->options_.tls_context = make_tls_context({});
                auto stream = std::make_unique<tls_stream>(self->ex_, *self->options_.tls_context);
                auto& tls = stream->stream();
                if (auto tls_ec = prepare_client_tls(tls, server_name)) return self->connect_done(tls_ec);
                self->offer_tls_session(tls.native_handle());
                self->stream_ = std::move(stream);
                asio::async_connect(
                    tls.next_layer(), results,
                    [self, &tls](error_code ec2, const asio::ip::tcp::endpoint&) {
                        if (self->state_ == session_state::failed) return;
                        if (ec2) return self->connect_done(ec2);
                        set_tcp_options(tls.next_layer());
                        tls.async_handshake(asio::ssl::stream_base::client, [self, &tls](error_code ec3) {
                            if (self->state_ == session_state::failed) return;
                            if (!ec3) ec3 = check_pins(tls.native_handle(), self->options_.tls_pins);
                            self->after_handshake(ec3);
                            self->connect_done(ec3);
                        });
                    });
            } else {
                auto stream = std::make_unique<plain_stream>(self->ex_);
                auto& socket = stream->stream();
                self->stream_ = std::move(stream);
                asio::async_connect(socket, results,
                                    [self, &socket](error_code ec2, const asio::ip::tcp::endpoint&) {
                                        if (self->state_ == session_state::failed) return;
                                        if (!ec2) set_tcp_options(socket);
                                        self->connect_done(ec2);
                                    });
            }
        };
    // An IP address needs no resolver (whose lookups run on a thread of its
    // own): the endpoint is built here, and the same code goes on.
    error_code parse_ec;
    const auto address = asio::ip::make_address(host, parse_ec);
    unsigned long port_number = 0;
    const bool numeric_port = !port.empty() && port.size() <= 5 &&
                              port.find_first_not_of("0123456789") == std::string::npos &&
                              (port_number = std::stoul(port)) <= 65535;
    if (!parse_ec && numeric_port) {
        const asio::ip::tcp::endpoint ep(address, static_cast<unsigned short>(port_number));
        asio::post(ex_, [on_resolved = std::move(on_resolved), results = asio::ip::tcp::resolver::results_type::create(
                                                                 ep, host, port)]() mutable {
            on_resolved(error_code{}, std::move(results));
        });
        return;
    }
    resolver_ = std::make_unique<asio::ip::tcp::resolver>(ex_);
    resolver_->async_resolve(host, port, std::move(on_resolved));
}

void engine::connect_done(error_code ec) {
    if (ec) {
        if (timed_out_) ec = error::timeout;
        fail_session(ec);
        return;
    }
    // Connected: the greeting completes the connect operation.
    auto greeting = std::make_unique<greeting_request>();
    greeting->greeting = true;
    greeting->ex = ex_;
    assign_handler(greeting->h, std::move(connect_handler_));
    greeting->group = greeting.get();
    greeting->diag = connect_diag_;
    pipe_.enqueue({std::move(greeting), {}, reply_shape::single_line, 0, false});
    pump();
}

void engine::start_greeting(handler<> h) {
    auto greeting = std::make_unique<greeting_request>();
    greeting->greeting = true;
    greeting->ex = ex_;
    assign_handler(greeting->h, std::move(h));
    if (state_ != session_state::disconnected || !stream_ || connecting_) {
        reject(*greeting, error::wrong_state);
        return;
    }
    connecting_ = true;
    const auto now = clock::now();
    connect_deadline_ = now + options_.connect_timeout;
    if (options_.session_timeout.count() > 0) session_deadline_ = now + options_.session_timeout;
    touch();
    install_cancellation(*greeting);
    greeting->group = greeting.get();
    pipe_.enqueue({std::move(greeting), {}, reply_shape::single_line, 0, false});
    pump();
}

void engine::on_greeted(const std::string& text, bool ok) {
    connecting_ = false;
    touch();
    greeting_ = text;
    if (ok) {
        state_ = session_state::authorization;
    } else {
        // A server that greets with -ERR will not serve this connection.
        asio::post(ex_, [self = shared_from_this()] { self->fail_session(error::server_refused); });
    }
}

void engine::on_logged_in() { state_ = session_state::transaction; }

void engine::on_quit() {
    state_ = session_state::update;
    if (stream_) stream_->close();
    disarm_timer();
    asio::post(ex_, [self = shared_from_this()] { self->release_buffers(); });
}

void engine::on_capabilities(const capabilities& caps) {
    caps_ = caps;
    if (options_.pipeline.depth == 0) pipe_.set_depth(caps.pipelining ? default_pipeline_depth : 1);
}

void engine::remember_size(std::uint64_t number, std::uint64_t octets) { sizes_[number] = octets; }

bool engine::has_apop_timestamp() const noexcept {
    std::string_view ts;
    return !find_apop_timestamp(greeting_, ts);
}

void engine::begin_tls(handler<> h) {
    auto complete = [this](handler<> done, error_code ec) { complete_posted(ex_, std::move(done), ec); };
    if (state_ == session_state::failed) return complete(std::move(h), error::session_failed);
    // RFC 2595 / CVE-2021-22947 and kin: anything the server sent after its
    // STLS +OK arrived in plaintext and must not be taken as TLS-protected.
    if (rend_ > rbeg_) {
        fail_session(error::stls_injection);
        return complete(std::move(h), error::stls_injection);
    }
    auto* plain = dynamic_cast<plain_stream*>(stream_.get());
    if (plain == nullptr) return complete(std::move(h), error::wrong_state);  // already TLS, or a user's stream
    if (!options_.tls_context) options_.tls_context = make_tls_context({});
    auto tls = std::make_unique<tls_stream>(std::move(plain->stream()), *options_.tls_context);
    if (error_code ec = prepare_client_tls(tls->stream(), server_name_)) {
        fail_session(ec);
        return complete(std::move(h), ec);
    }
    offer_tls_session(tls->stream().native_handle());
    auto& ssl = tls->stream();
    stream_ = std::move(tls);
    release_buffers();
    upgrading_ = true;
    handshake_deadline_ = clock::now() + options_.handshake_timeout;
    touch();
    arm_timer();
    ssl.async_handshake(asio::ssl::stream_base::client,
                        [self = shared_from_this(), gen = generation_, &ssl, complete,
                         h = std::move(h)](error_code ec) mutable {
                            self->upgrading_ = false;
                            if (gen != self->generation_) {
                                return complete(std::move(h), self->timed_out_ ? error_code(error::timeout)
                                                                               : self->failure_);
                            }
                            if (!ec) ec = check_pins(ssl.native_handle(), self->options_.tls_pins);
                            self->after_handshake(ec);
                            if (ec) {
                                self->fail_session(ec);
                                return complete(std::move(h), ec);
                            }
                            // What was learned in plaintext is not trusted (RFC 2595 section 4).
                            self->caps_.reset();
                            if (self->options_.pipeline.depth == 0) self->pipe_.set_depth(1);
                            self->touch();
                            complete(std::move(h), {});
                            self->pump();
                        });
}

// ---------------------------------------------------------------------------
// TLS session resumption

void engine::offer_tls_session(SSL* ssl) {
    if (!options_.tls_session_cache) return;
    tls_key_ = tls_session_key(ssl, server_name_, port_, options_.tls_pins);
    detail::offer_tls_session(ssl, *options_.tls_session_cache, tls_key_);
}

void engine::after_handshake(error_code ec) {
    if (!options_.tls_session_cache) return;
    if (ec) {
        // A server that failed verification (or a pin) just now is not
        // trusted on the strength of an older session either.
        options_.tls_session_cache->erase(tls_key_);
        return;
    }
    tls_store_pending_ = true;
}

SSL* engine::tls_handle() const noexcept {
    auto* tls = dynamic_cast<tls_stream*>(stream_.get());
    return tls != nullptr ? tls->stream().native_handle() : nullptr;
}

void engine::store_tls_session() {
    SSL* ssl = tls_handle();
    if (ssl == nullptr) return;
    SSL_SESSION* s = SSL_get_session(ssl);  // no reference taken
    // TLS 1.3: resumable once the server's ticket has been read, which
    // comes with or before the first reply after the handshake.
    if (s == nullptr || SSL_SESSION_is_resumable(s) != 1) return;
    options_.tls_session_cache->store(tls_key_, s);
    tls_store_pending_ = false;
}

bool engine::tls_resumed() const noexcept {
    SSL* ssl = tls_handle();
    return ssl != nullptr && SSL_session_reused(ssl) == 1;
}

std::uint64_t engine::expected_size(std::uint64_t number) const {
    auto it = sizes_.find(number);
    return it == sizes_.end() ? 0 : it->second;
}

void engine::remember_uid(std::uint64_t number, const std::string& uid) { uids_[number] = uid; }

message_info engine::known(std::uint64_t number) const {
    message_info m{number, expected_size(number), {}};
    if (auto it = uids_.find(number); it != uids_.end()) m.uid = it->second;
    return m;
}

// ---------------------------------------------------------------------------
// Submitting and cancelling

void engine::reject(request& r, error_code ec) {
    if (r.diag != nullptr && ec == error::session_failed)
        r.diag->assign_client("the session failed earlier: " + failure_.message());
    r.fail(ec);
}

void engine::submit_front(std::unique_ptr<request> r, std::string wire, reply_shape shape) {
    if (r->group == nullptr) r->group = r.get();
    if (state_ == session_state::failed) return reject(*r, error::session_failed);
    install_cancellation(*r);
    pipe_.enqueue_front({std::move(r), std::move(wire), shape, 0, true});
    pump();
}

void engine::submit(std::unique_ptr<request> r, std::string wire, reply_shape shape, bool barrier,
                    std::uint64_t expected_reply) {
    if (r->group == nullptr) r->group = r.get();
    if (state_ == session_state::failed) return reject(*r, error::session_failed);
    if (!stream_ || state_ == session_state::disconnected || state_ == session_state::update)
        return reject(*r, error::not_connected);
    install_cancellation(*r);
    if (!busy()) touch();  // an idle period does not count against the reply timeout
    pipe_.enqueue({std::move(r), std::move(wire), shape, expected_reply, barrier});
    schedule_pump();
}

void engine::schedule_pump() {
    // Commands submitted during the same turn of the event loop (a batch,
    // or DELEs issued as each commit completes) leave in one write.
    if (pumping_) {
        repump_ = true;
        return;
    }
    if (pump_posted_) return;
    pump_posted_ = true;
    asio::post(ex_, [self = shared_from_this()] {
        self->pump_posted_ = false;
        self->pump();
    });
}

void engine::install_cancellation(request& r) {
    auto slot = r.slot();
    if (!slot.is_connected()) return;
    slot.assign([w = weak_from_this(), group = r.group](asio::cancellation_type) {
        if (auto e = w.lock()) e->cancel_group(group);
    });
}

void engine::cancel_group(const void* group) {
    // Waiting commands are removed; written ones are abandoned: their
    // replies are read and dropped, so the stream stays in step.
    pipe_.cancel_where([group](const std::unique_ptr<request>& r) { return r->group == group; },
                       [](std::unique_ptr<request>& r) { r->fail(asio::error::operation_aborted); });
    pump();
}

bool engine::allowed(const request& r) const noexcept {
    if (r.greeting) return true;
    using k = command_kind;
    switch (state_) {
    case session_state::authorization:
        switch (r.kind) {
        case k::user: case k::pass: case k::apop: case k::auth: case k::capa: case k::stls:
        case k::quit: case k::utf8: case k::lang: case k::noop:
            return true;
        default:
            return false;
        }
    case session_state::transaction:
        switch (r.kind) {
        case k::user: case k::pass: case k::apop: case k::auth: case k::stls: case k::utf8:
            return false;
        default:
            return true;
        }
    default:
        return false;
    }
}

// ---------------------------------------------------------------------------
// The loops

void engine::pump() {
    // A user callback run from inside process() (a sink, a fetch callback)
    // may start operations; they are picked up by the loop below instead of
    // re-entering process() while it holds a view into the buffer.
    if (pumping_) {
        repump_ = true;
        return;
    }
    pumping_ = true;
    // Every reply the buffer holds first (each answered one makes room, and
    // a callback may submit more), then one write for all the commands
    // admitted: a command per write would cost the server a wakeup, a read
    // and a TLS record each. Completions are posted, never run inline, so
    // nothing below the loop can ask for another pass.
    while (state_ != session_state::failed && !upgrading_) {
        repump_ = false;
        admit();
        process();
        if (!repump_) break;
    }
    if (state_ != session_state::failed && !upgrading_) {
        start_write();
        start_read();
    }
    pumping_ = false;
    if (!busy()) {
        release_buffers();
        // Nothing is expected from the server: no deadline runs, and no
        // timer keeps the io_context from running out of work.
        disarm_timer();
    }
}

void engine::disarm_timer() {
    if (!timer_armed_) return;
    timer_armed_ = false;
    ++timer_generation_;
    timer_.cancel();
}

bool engine::busy() const noexcept {
    return !pipe_.empty() || reading_ || writing_ || sink_busy_ || connecting_ || upgrading_;
}

void engine::admit() {
    while (entry* c = pipe_.admissible()) {
        if (!allowed(*c->payload)) {
            entry refused = pipe_.drop_waiting();
            reject(*refused.payload, error::wrong_state);
            continue;
        }
        pipe_.admit();
    }
}

void engine::start_write() {
    if (writing_ || !stream_ || state_ == session_state::failed) return;
    const std::string_view out = pipe_.pending_output();
    if (out.empty()) return;
    writing_ = true;
    arm_timer();
    stream_->async_write_some(asio::buffer(out.data(), out.size()),
                              [self = shared_from_this(), gen = generation_](error_code ec, std::size_t n) {
                                  self->writing_ = false;
                                  if (gen != self->generation_) return;
                                  if (ec) return self->on_io_error(ec, false);
                                  self->pipe_.on_written(n);
                                  self->touch();
                                  self->pump();
                              });
}

void engine::start_read() {
    if (reading_ || sink_busy_ || !stream_ || state_ == session_state::failed) return;
    if (pipe_.front_in_flight() == nullptr) return;
    // A record that failed behind good ones: reported where the next read
    // would have found it, once the octets before it are parsed.
    if (read_error_) return on_io_error(std::exchange(read_error_, {}), true);
    // Make room: the parser has consumed [0, rbeg_). The buffer starts
    // small (most replies are short) and doubles while reads fill it, up to
    // read_size: a thousand sessions logging in do not hold 32 KiB each.
    const std::size_t want = read_chunk_ + options_.limits.max_status_line;
    if (rbeg_ != 0) {  // what is left unparsed moves to the front
        std::memmove(rbuf_.data(), rbuf_.data() + rbeg_, rend_ - rbeg_);
        rend_ -= rbeg_;
        rbeg_ = 0;
    }
    rbuf_.grow(want, rend_);
    update_low_water();
    reading_ = true;
    arm_timer();
    stream_->async_read_some(asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
                             [self = shared_from_this(), gen = generation_](error_code ec, std::size_t n) {
                                 self->reading_ = false;
                                 if (gen != self->generation_) return;
                                 if (ec) return self->on_io_error(ec, true);
                                 self->rend_ += n;
                                 // More records may have come with the same socket read.
                                 if (self->stream_)
                                     self->rend_ += self->stream_->read_buffered(
                                         asio::buffer(self->rbuf_.data() + self->rend_,
                                                      self->rbuf_.size() - self->rend_),
                                         self->read_error_);
                                 if (self->rend_ == self->rbuf_.size())
                                     self->read_chunk_ = std::min(self->read_chunk_ * 2, self->options_.read_size);
                                 self->touch();
                                 if (self->tls_store_pending_) self->store_tls_session();
                                 self->pump();
                                 // Only a reply still due can be held back
                                 // by the server's Nagle waiting for our ACK.
                                 if (self->options_.tcp_quickack && self->stream_ &&
                                     self->pipe_.front_in_flight() != nullptr)
                                     self->stream_->after_read();
                             });
}

void engine::update_low_water() {
    if (low_water_off_) return;
    const std::size_t mark = options_.read_low_water;
    if (mark <= 1) {
        low_water_off_ = true;
        return;
    }
    // Octets surely still to come: the expected sizes (LIST's message
    // octets) of the replies whose commands are all written (none waits to
    // go out), less the front reply's body handed out so far, what the
    // buffer holds unparsed, and what TLS may hold decrypted or undecrypted
    // above the socket (two 17 KiB buffers and a record). Replies without a
    // size count nothing.
    std::size_t want = 1;
    if (!writing_ && pipe_.pending_output().empty()) {
        constexpr std::uint64_t above_socket = 64 * 1024;
        const std::uint64_t front = parser_active_ ? parser_.body_size() : 0;
        const std::uint64_t have = front + (rend_ - rbeg_) + above_socket;
        const std::uint64_t due = pipe_.bytes_in_flight();
        if (due > have && due - have >= mark) want = mark;
    }
    set_low_water(want);
}

void engine::set_low_water(std::size_t octets) {
    if (octets == low_water_ || !stream_) return;
    if (!stream_->set_read_low_water(octets)) {
        low_water_off_ = true;  // not a TCP socket: nothing to set
        return;
    }
    low_water_ = octets;
}

void engine::process() {
    while (!sink_busy_ && state_ != session_state::failed) {
        entry* front = pipe_.front_in_flight();
        if (front == nullptr) {
            if (rend_ > rbeg_) fail_session(error::unexpected_data);
            return;
        }
        if (!parser_active_) {
            parser_.start(front->shape);
            parser_active_ = true;
            if (options_.command_timeout.count() > 0) {
                auto budget = std::chrono::duration_cast<clock::duration>(options_.command_timeout);
                if (options_.min_reply_rate != 0)
                    budget += std::chrono::seconds(front->expected_reply / options_.min_reply_rate);
                reply_deadline_ = clock::now() + budget;
                arm_timer();
            }
        }
        if (rbeg_ == rend_) return;
        error_code ec;
        // In place: the body lines of the buffer come out as one view, moved
        // together over the stuffing dots between them (one sink call, not
        // one per stuffed line).
        const parse_result r = parser_.parse_in_place(rbuf_.data() + rbeg_, rend_ - rbeg_, ec);
        if (ec) return fail_session(ec);
        request& req = *front->payload;
        const bool dropped = front->abandoned || req.complete();
        switch (r.event) {
        case parse_event::need_more:
            rbeg_ += r.consumed;
            return;
        case parse_event::status:
            rbeg_ += r.consumed;
            probing_ = options_.check_message_start && parser_.status().ok() && !parser_.done() &&
                       (req.kind == command_kind::retr || req.kind == command_kind::top);
            probe_len_ = 0;
            if (!dropped) req.on_status(*this, parser_.status());
            if (parser_.done()) finish_front();
            break;
        case parse_event::body: {
            if (probing_) {
                if (error_code out_of_step = probe_message_start(r.body)) return fail_session(out_of_step);
            }
            if (dropped || req.body_error) {
                rbeg_ += r.consumed;
                break;
            }
            const std::size_t consumed = r.consumed;
            auto make_resume = [this, consumed, &req] {
                return resume_fn::handler_type([self = shared_from_this(), gen = generation_, consumed,
                                                &req](error_code sink_ec) {
                    if (self->in_sink_call_ && gen == self->generation_) {
                        // Called before async_write returned: process()
                        // takes it from here.
                        self->sink_done_inline_ = true;
                        self->sink_inline_ec_ = sink_ec;
                        return;
                    }
                    self->sink_busy_ = false;
                    if (gen != self->generation_) {
                        // The session failed while the sink held a view into
                        // the read buffer: only now may the buffer go.
                        self->release_buffers();
                        return;
                    }
                    if (sink_ec && !req.body_error) req.body_error = sink_ec;
                    self->rbeg_ += consumed;
                    self->touch();
                    self->pump();
                });
            };
            // Busy during the call, so that a sink that closes the session
            // cannot free the buffer its chunk points into.
            sink_busy_ = true;
            in_sink_call_ = true;
            sink_done_inline_ = false;
            const bool pending = req.on_body(*this, r.body, resume_fn(make_resume));
            in_sink_call_ = false;
            if (pending && !sink_done_inline_) return;  // resumed by `done`
            sink_busy_ = false;
            if (state_ == session_state::failed) return release_buffers();
            if (pending && sink_inline_ec_ && !req.body_error) req.body_error = sink_inline_ec_;
            sink_inline_ec_ = {};
            rbeg_ += consumed;
            break;
        }
        case parse_event::done:
            rbeg_ += r.consumed;
            finish_front();
            break;
        }
    }
}

error_code engine::probe_message_start(std::string_view chunk) {
    const std::size_t take = std::min(chunk.size(), sizeof probe_ - probe_len_);
    std::copy_n(chunk.data(), take, probe_ + probe_len_);
    probe_len_ += take;
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    bool possible = false;
    for (std::string_view indicator : {std::string_view("+ok"), std::string_view("-err")}) {
        const std::size_t n = std::min(probe_len_, indicator.size());
        bool prefix = true;
        for (std::size_t i = 0; i < n && prefix; ++i) prefix = lower(probe_[i]) == indicator[i];
        if (!prefix) continue;
        if (probe_len_ <= indicator.size()) {
            possible = true;  // not yet decided: wait for more octets
            continue;
        }
        const char next = probe_[indicator.size()];
        if (next == ' ' || next == '\r' || next == '\n') return error::reply_out_of_step;
    }
    probing_ = possible;
    return {};
}

void engine::finish_front() {
    parser_active_ = false;
    reply_deadline_ = clock::time_point::max();
    probing_ = false;
    repump_ = true;  // the window has room again: admit and write more
    entry done = pipe_.answered();
    if (!done.abandoned && !done.payload->complete()) done.payload->on_end(*this);
}

void engine::on_io_error(error_code ec, bool reading) {
    if (state_ == session_state::failed || state_ == session_state::update) return;
    if (timed_out_) {
        ec = error::timeout;
    } else if (reading && ec == asio::error::eof) {
        error_code cut = parser_active_ ? parser_.on_eof() : error_code{};
        // Closed between replies (before a greeting, say): not a cut line.
        if (cut == error::eof_in_status_line && rbeg_ == rend_) cut = {};
        ec = cut ? cut : error_code(error::connection_closed);
    } else if (ec == asio::ssl::error::stream_truncated) {
        ec = error::connection_closed;
    }
    fail_session(ec);
}

void engine::fail_session(error_code ec) {
    if (state_ == session_state::failed) return;
    state_ = session_state::failed;
    failure_ = ec;
    read_error_ = {};
    if (const entry* front = pipe_.front_in_flight()) failed_on_pipelined_ = front->pipelined;
    ++generation_;
    connecting_ = false;
    if (resolver_) resolver_->cancel();
    if (stream_) stream_->close();
    timer_.cancel();
    if (connect_handler_) complete_posted(ex_, std::move(connect_handler_), ec);
    for (auto& c : pipe_.take_all())
        if (!c.abandoned) c.payload->fail(ec);
    parser_active_ = false;
    reply_deadline_ = clock::time_point::max();
    release_buffers();  // kept while a sink still holds a chunk of it
}

void engine::close() noexcept {
    if (state_ == session_state::failed || state_ == session_state::update) return;
    fail_session(asio::error::operation_aborted);
}

void engine::release_buffers() {
    if (rbeg_ != rend_ || reading_ || sink_busy_) return;
    rbuf_.reset();
    rbeg_ = rend_ = 0;
    read_chunk_ = std::min<std::size_t>(initial_read_chunk, options_.read_size);
    pipe_.shrink();
}

// ---------------------------------------------------------------------------
// Timeouts: one timer per session, re-armed lazily from the last activity.

engine::clock::time_point engine::next_deadline() const {
    const auto idle = connecting_   ? connect_deadline_
                      : upgrading_ ? handshake_deadline_
                                   : std::min(last_activity_ + options_.reply_timeout, reply_deadline_);
    auto deadline = std::min(idle, session_deadline_);
    // A read held by the low-water mark gets a short look: see on_timer.
    if (reading_ && low_water_ > 1) deadline = std::min(deadline, last_activity_ + low_water_grace);
    return deadline;
}

void engine::arm_timer() {
    if (state_ == session_state::failed) return;
    const auto deadline = next_deadline();
    // Re-arm only when the deadline moved earlier (say, from the connect
    // deadline to the reply timeout); a later one is found when the timer
    // fires. expires_at() cancels the old wait, which the generation check
    // then ignores.
    if (timer_armed_ && deadline >= timer_.expiry()) return;
    timer_armed_ = true;
    timer_.expires_at(deadline);
    timer_.async_wait([w = weak_from_this(), gen = ++timer_generation_](error_code ec) {
        auto self = w.lock();
        if (!self || gen != self->timer_generation_) return;
        self->timer_armed_ = false;
        if (ec != asio::error::operation_aborted) self->on_timer();
    });
}

void engine::on_timer() {
    if (state_ == session_state::failed || state_ == session_state::update) return;
    if (!busy()) return;  // idle: no reply is late
    const auto now = clock::now();
    if (reading_ && low_water_ > 1 && now >= last_activity_ + low_water_grace) {
        // Nothing came for a while with the mark set: the server may have
        // sent less than LIST said, and the rest waits under the mark. Wake
        // on any octet (setting it wakes a read the octets already satisfy)
        // and keep to that for the rest of the session.
        set_low_water(1);
        low_water_off_ = true;
        arm_timer();
        return;
    }
    if (sink_busy_ && !upgrading_ && now < session_deadline_) {
        // The local sink is slow, not the server.
        touch();
        if (reply_deadline_ != clock::time_point::max())
            reply_deadline_ = std::max(reply_deadline_, now + std::chrono::duration_cast<clock::duration>(
                                                                  options_.command_timeout));
        arm_timer();
        return;
    }
    if (now >= next_deadline()) {
        timed_out_ = true;
        fail_session(error::timeout);
        return;
    }
    arm_timer();
}

}  // namespace pop3::detail
