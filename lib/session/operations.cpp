// The requests behind each session operation, and session_core, which
// validates and encodes a command and hands it to the engine.

#include "engine.hpp"

#include <pop3/apop.hpp>
#include <pop3/listing.hpp>
#include <pop3/sasl.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>

#include <algorithm>
#include <unordered_map>

namespace pop3::detail {
namespace asio = boost::asio;

namespace {

// ---------------------------------------------------------------------------
// Single-line replies

/// DELE, NOOP, RSET, QUIT, APOP: the status is the result.
struct status_request final : typed_request<> {
    void on_end(engine& e) override {
        if (kind == command_kind::quit) e.on_quit();
        if (kind == command_kind::apop && ok()) e.on_logged_in();
        finish(outcome());
    }
};

/// USER and PASS share one handler: PASS's request completes it, with
/// USER's -ERR when USER was refused.
struct login_shared {
    bool user_refused = false;
    response_code code;
    std::string text;
};

struct user_step final : request {
    std::shared_ptr<login_shared> shared;
    bool done = false;
    void on_status(engine&, const status_line& s) override {
        indicator = s.indicator;
        if (!s.ok()) {
            shared->user_refused = true;
            shared->code = s.code;
            shared->text = s.text;
        }
    }
    void on_end(engine&) override { done = true; }
    void fail(error_code) override { done = true; }  // PASS carries the handler
    bool complete() const noexcept override { return done; }
    asio::cancellation_slot slot() override { return {}; }
};

struct pass_step final : typed_request<> {
    std::shared_ptr<login_shared> shared;
    void on_status(engine& e, const status_line& s) override {
        if (shared->user_refused) {
            indicator = status_indicator::err;
            if (diag != nullptr) diag->assign_server(shared->code, shared->text);
            return;
        }
        request::on_status(e, s);
    }
    void on_end(engine& e) override {
        if (ok()) e.on_logged_in();
        finish(outcome());
    }
};

struct stat_request final : typed_request<stat_info> {
    stat_info result;
    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        if (ok()) body_error = parse_stat(s.text, result);
    }
    void on_end(engine&) override { finish(outcome(), result); }
};

struct list_one_request final : typed_request<list_entry> {
    list_entry result;
    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        if (ok()) {
            body_error = parse_list_line(s.text, result);
            if (!body_error) e.remember_size(result.number, result.octets);
        }
    }
    void on_end(engine&) override { finish(outcome(), result); }
};

struct uidl_one_request final : typed_request<uidl_entry> {
    uidl_entry result;
    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        if (ok()) body_error = parse_uidl_line(s.text, result);
        if (ok() && !body_error) e.remember_uid(result.number, result.uid);
    }
    void on_end(engine&) override { finish(outcome(), std::move(result)); }
};

struct last_request final : typed_request<std::uint64_t> {
    std::uint64_t result = 0;
    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        if (ok()) body_error = parse_number(s.text.substr(0, s.text.find(' ')), result);
    }
    void on_end(engine&) override { finish(outcome(), result); }
};

// ---------------------------------------------------------------------------
// Multi-line replies parsed line by line

/// Feeds body chunks to `on_line` through a bounded line_reader.
template <class Base>
struct line_request : Base {
    line_reader lines;
    explicit line_request(std::size_t max_line) : lines(max_line) {}
    virtual error_code on_line(engine& e, std::string_view line) = 0;
    bool on_body(engine& e, std::string_view chunk, const resume_fn&) override {
        this->body_error = lines.feed(chunk, [&](std::string_view l) { return on_line(e, l); });
        return false;
    }
    void end_lines(engine& e) {
        if (!this->body_error)
            this->body_error = lines.finish([&](std::string_view l) { return on_line(e, l); });
    }
};

/// The entries of one LIST or UIDL reply: at most `cap` of them, and no
/// message named twice. Servers list in ascending order, so the check for
/// repeats is a comparison per line unless the order breaks.
struct entry_check {
    std::size_t cap = 0;
    std::size_t count = 0;
    std::uint64_t last = 0;
    bool ascending = true;

    error_code add(std::uint64_t number) noexcept {
        if (++count > cap) return error::too_many_entries;
        if (number <= last) ascending = false;
        last = number;
        return {};
    }
    template <class Range, class Number>
    error_code finish(const Range& entries, Number number_of) const {
        if (ascending) return {};
        std::vector<std::uint64_t> numbers;
        numbers.reserve(entries.size());
        for (const auto& e : entries) numbers.push_back(number_of(e));
        std::sort(numbers.begin(), numbers.end());
        if (std::adjacent_find(numbers.begin(), numbers.end()) != numbers.end())
            return error::duplicate_message_number;
        return {};
    }
};

struct capa_request final : line_request<typed_request<capabilities>> {
    capabilities result;
    parser_limits limits;
    explicit capa_request(const parser_limits& l) : line_request(l.max_line), limits(l) {}
    error_code on_line(engine&, std::string_view line) override { return result.add_line(line, limits); }
    void on_end(engine& e) override {
        end_lines(e);
        if (ok() && !body_error) e.on_capabilities(result);
        finish(outcome(), std::move(result));
    }
};

struct list_request final : line_request<typed_request<std::vector<list_entry>>> {
    std::vector<list_entry> result;
    entry_check check;
    using line_request::line_request;
    error_code on_line(engine& e, std::string_view line) override {
        list_entry entry;
        if (auto ec = parse_list_line(line, entry)) return ec;
        if (auto ec = check.add(entry.number)) return ec;
        e.remember_size(entry.number, entry.octets);
        result.push_back(entry);
        return {};
    }
    void on_end(engine& e) override {
        end_lines(e);
        if (!body_error) body_error = check.finish(result, [](const list_entry& l) { return l.number; });
        finish(outcome(), std::move(result));
    }
};

struct uidl_request final : line_request<typed_request<std::vector<uidl_entry>>> {
    std::vector<uidl_entry> result;
    entry_check check;
    using line_request::line_request;
    error_code on_line(engine& e, std::string_view line) override {
        uidl_entry entry;
        if (auto ec = parse_uidl_line(line, entry)) return ec;
        if (auto ec = check.add(entry.number)) return ec;
        e.remember_uid(entry.number, entry.uid);
        result.push_back(std::move(entry));
        return {};
    }
    void on_end(engine& e) override {
        end_lines(e);
        if (!body_error) body_error = check.finish(result, [](const uidl_entry& u) { return u.number; });
        finish(outcome(), std::move(result));
    }
};

/// LIST and UIDL pipelined together: LIST's part is silent, UIDL's
/// completes the handler with both merged.
struct list_uidl_shared {
    std::vector<list_entry> list;
    error_code list_error;
    bool list_refused = false;
    response_code code;
    std::string text;
};

struct list_part final : line_request<request> {
    std::shared_ptr<list_uidl_shared> shared;
    entry_check check;
    bool done = false;
    using line_request::line_request;
    error_code on_line(engine& e, std::string_view line) override {
        list_entry entry;
        if (auto ec = parse_list_line(line, entry)) return ec;
        if (auto ec = check.add(entry.number)) return ec;
        e.remember_size(entry.number, entry.octets);
        shared->list.push_back(entry);
        return {};
    }
    void on_status(engine&, const status_line& s) override {
        indicator = s.indicator;
        if (!s.ok()) {
            shared->list_refused = true;
            shared->code = s.code;
            shared->text = s.text;
        }
    }
    void on_end(engine& e) override {
        end_lines(e);
        if (!body_error) body_error = check.finish(shared->list, [](const list_entry& l) { return l.number; });
        shared->list_error = body_error;
        done = true;
    }
    void fail(error_code) override { done = true; }
    bool complete() const noexcept override { return done; }
    asio::cancellation_slot slot() override { return {}; }
};

struct uidl_part final : line_request<typed_request<std::vector<message_info>>> {
    std::shared_ptr<list_uidl_shared> shared;
    std::unordered_map<std::uint64_t, std::string> uids;
    std::size_t cap = 0;
    using line_request::line_request;
    error_code on_line(engine& e, std::string_view line) override {
        uidl_entry entry;
        if (auto ec = parse_uidl_line(line, entry)) return ec;
        if (uids.size() >= cap) return error::too_many_entries;
        e.remember_uid(entry.number, entry.uid);
        if (!uids.emplace(entry.number, std::move(entry.uid)).second) return error::duplicate_message_number;
        return {};
    }
    void on_end(engine& e) override {
        end_lines(e);
        if (shared->list_refused) {
            if (diag != nullptr) diag->assign_server(shared->code, shared->text);
            return finish(error::server_refused, {});
        }
        if (shared->list_error) return finish(shared->list_error, {});
        if (error_code ec = outcome()) return finish(ec, {});
        std::vector<message_info> merged;
        merged.reserve(shared->list.size());
        for (const auto& l : shared->list) {
            message_info m{l.number, l.octets, {}};
            if (auto it = uids.find(l.number); it != uids.end()) m.uid = std::move(it->second);
            merged.push_back(std::move(m));
        }
        finish({}, std::move(merged));
    }
};

// ---------------------------------------------------------------------------
// Message bodies

/// RETR or TOP into one string, under a size cap.
struct string_body_request final : typed_request<std::string> {
    std::string result;
    std::uint64_t cap = 0;
    bool on_body(engine&, std::string_view chunk, const resume_fn&) override {
        if (chunk.size() > cap - std::min<std::uint64_t>(cap, result.size())) {
            body_error = error::message_too_large;
            std::string().swap(result);
            return false;
        }
        result.append(chunk);
        return false;
    }
    void on_end(engine&) override {
        if (outcome()) std::string().swap(result);
        finish(outcome(), std::move(result));
    }
};

/// Hands a chunk to a body_sink; returns true when the sink is asynchronous.
bool write_to_sink(body_sink& sink, std::string_view chunk, const resume_fn& resume, error_code& sync_error) {
    if (sink.async_write) {
        sink.async_write(chunk, resume.make());
        return true;
    }
    if (sink.write) sync_error = sink.write(chunk);
    return false;
}

/// True when a chunk of `n` octets would take a message of `so_far` octets
/// over `cap`.
bool over_cap(std::uint64_t so_far, std::size_t n, std::uint64_t cap) noexcept {
    return n > cap - std::min(cap, so_far);
}

struct sink_request final : typed_request<std::uint64_t> {
    body_sink sink;
    std::uint64_t octets = 0;
    std::uint64_t cap = 0;
    bool on_body(engine&, std::string_view chunk, const resume_fn& resume) override {
        if (over_cap(octets, chunk.size(), cap)) {
            body_error = error::message_too_large;  // the rest is read and dropped
            return false;
        }
        octets += chunk.size();
        return write_to_sink(sink, chunk, resume, body_error);
    }
    void on_end(engine&) override { finish(outcome(), octets); }
};

// ---------------------------------------------------------------------------
// Batches: many commands, one handler

template <class... T>
struct batch_state {
    handler<T...> h;
    asio::any_io_executor ex;
    std::size_t remaining = 0;
    error_code first_fatal;

    void one_done(error_code ec, auto&& finish_values) {
        if (ec && is_fatal(ec) && !first_fatal) first_fatal = ec;
        if (--remaining != 0 || !h) return;
        std::apply([&](auto&&... v) { complete_posted(ex, std::move(h), first_fatal, std::move(v)...); },
                   finish_values());
    }
};

struct fetch_batch : batch_state<> {
    fetch_callbacks callbacks;
};

struct fetch_one final : request {
    std::shared_ptr<fetch_batch> batch;
    message_info info;
    diagnostics own_diag;
    body_sink sink;
    std::uint64_t octets = 0;
    std::uint64_t cap = 0;
    bool done = false;

    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        if (ok() && batch->callbacks.open) sink = batch->callbacks.open(info);
    }
    bool on_body(engine&, std::string_view chunk, const resume_fn& resume) override {
        if (over_cap(octets, chunk.size(), cap)) {
            body_error = error::message_too_large;  // the rest is read and dropped
            return false;
        }
        octets += chunk.size();
        return write_to_sink(sink, chunk, resume, body_error);
    }
    void on_end(engine&) override {
        const error_code ec = !ok() ? error_code(error::server_refused) : body_error;
        if (!ec && info.octets != 0 && octets != info.octets) {
            // Delivered whole; the listing was wrong (or counted line
            // endings its own way). A warning, not an error.
            own_diag.assign_client("size differs from LIST: listed " + std::to_string(info.octets) +
                                   " octets, received " + std::to_string(octets));
        }
        settle(ec);
    }
    void fail(error_code ec) override { settle(ec); }
    void settle(error_code ec) {
        if (done) return;
        done = true;
        if (batch->callbacks.done) batch->callbacks.done(info, ec, own_diag);
        batch->one_done(ec, [] { return std::tuple<>(); });
    }
    bool complete() const noexcept override { return done; }
    asio::cancellation_slot slot() override { return batch->h.get_cancellation_slot(); }
};

struct delete_batch : batch_state<std::vector<error_code>> {
    std::vector<error_code> results;
};

struct delete_one final : request {
    std::shared_ptr<delete_batch> batch;
    std::size_t index = 0;
    bool done = false;
    void on_end(engine&) override { settle(ok() ? error_code{} : error_code(error::server_refused)); }
    void fail(error_code ec) override { settle(ec); }
    void settle(error_code ec) {
        if (done) return;
        done = true;
        batch->results[index] = ec;
        batch->one_done(ec, [b = batch.get()] { return std::make_tuple(std::move(b->results)); });
    }
    bool complete() const noexcept override { return done; }
    asio::cancellation_slot slot() override { return batch->h.get_cancellation_slot(); }
};

/// A request of type Request (built from `args`) for `kind`, completing `h`.
template <class Request, class Handler, class... Args>
std::unique_ptr<Request> make_request(engine& e, command_kind kind, diagnostics* d, Handler&& h, Args&&... args) {
    auto r = std::make_unique<Request>(std::forward<Args>(args)...);
    r->kind = kind;
    r->diag = d;
    r->ex = e.executor();
    assign_handler(r->h, std::forward<Handler>(h));
    if (d != nullptr) d->clear();
    return r;
}

/// Encodes the request's command with `args` and hands it to the engine,
/// its reply framed as shape_of() says; an encoding error completes it.
bool encode_and_submit(engine& e, std::unique_ptr<request> r, std::initializer_list<std::string_view> args,
                       bool barrier = false, std::uint64_t expected_reply = 0) {
    std::string wire;
    if (error_code ec = encode_command(wire, r->kind, args, e.options().encoding)) {
        e.reject(*r, ec);
        return false;
    }
    const reply_shape shape = shape_of(r->kind, args.size());
    e.submit(std::move(r), std::move(wire), shape, barrier, expected_reply);
    return true;
}

std::string number_text(std::uint64_t n) { return std::to_string(n); }

// ---------------------------------------------------------------------------
// STLS and SASL

/// STLS: on +OK the engine takes the handler and upgrades the stream.
struct stls_request final : typed_request<> {
    void on_end(engine& e) override {
        if (!ok()) return finish(error::server_refused);
        handler<> taken;
        taken.swap(h);
        e.begin_tls(std::move(taken));
    }
};

/// One step of an AUTH exchange. Each "+ " continuation ends this request;
/// the next step (the client's response) is queued ahead of everything
/// waiting, carrying the mechanism and the handler on.
struct auth_request final : typed_request<> {
    std::unique_ptr<sasl_client> client;
    std::optional<std::string> pending_initial;  // not sent with AUTH: sent on the first "+ "
    std::string challenge_text;
    error_code abort_reason;  // we answered "*": the exchange ends with the server's -ERR

    void on_status(engine& e, const status_line& s) override {
        request::on_status(e, s);
        if (indicator == status_indicator::continuation) challenge_text = s.text;
    }

    void on_end(engine& e) override {
        if (indicator == status_indicator::continuation) return continue_exchange(e);
        if (!ok()) return finish(abort_reason ? abort_reason : error_code(error::server_refused));
        if (abort_reason) return finish(abort_reason);
        if (error_code ec = client->finish()) {
            // Logged in to a server that could not prove itself: do not use it.
            finish(ec);
            return e.abort(ec);
        }
        e.on_logged_in();
        finish({});
    }

    void continue_exchange(engine& e) {
        auto next = std::make_unique<auth_request>();
        next->kind = kind;
        next->diag = diag;
        next->ex = ex;
        next->client = std::move(client);
        next->abort_reason = abort_reason;
        assign_handler(next->h, std::move(h));
        std::string response;
        if (!next->abort_reason) {
            const auto challenge = base64_decode(challenge_text, e.options().limits.max_status_line);
            if (!challenge) {
                next->abort_reason = error::sasl_bad_challenge;
            } else if (pending_initial) {
                response = std::move(*pending_initial);
            } else {
                next->abort_reason = next->client->step(*challenge, response);
            }
        }
        std::string wire;
        if (next->abort_reason || encode_sasl_response(wire, base64_encode(response))) {
            if (!next->abort_reason) next->abort_reason = error::command_too_long;
            wire = "*\r\n";  // cancels the exchange (RFC 5034 section 4)
        }
        e.submit_front(std::move(next), std::move(wire), reply_shape::sasl);
    }
};

/// LANG without an argument: the languages the server offers, one per line.
struct lang_list_request final : line_request<typed_request<std::vector<std::string>>> {
    std::vector<std::string> result;
    using line_request::line_request;
    error_code on_line(engine&, std::string_view line) override {
        if (!line.empty()) result.emplace_back(line);
        return {};
    }
    void on_end(engine& e) override {
        end_lines(e);
        finish(outcome(), std::move(result));
    }
};

// ---------------------------------------------------------------------------
// The operations, as free functions over the engine: a continuation (a
// lambda in fetch_uids, the connect chain) holds the engine, never a
// session_core, which the user may move.

void complete_now(handler<> h, error_code ec) {
    auto slot = h.get_cancellation_slot();
    if (slot.is_connected()) slot.clear();
    asio::dispatch(asio::append(std::move(h), ec));
}

void op_starttls(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<> h) {
    encode_and_submit(*engine_, make_request<stls_request>(*engine_, command_kind::stls, d, std::move(h)), {}, true);
}

void op_capa(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<capabilities> h);

/// Connect, greeting, then the TLS policy for a plain connection: CAPA,
/// STLS, CAPA again. With tls_policy::required, a server without STLS (or
/// refusing it) ends the session with error::tls_required before any
/// credential could be sent.
void op_connect(const std::shared_ptr<engine>& e, std::string host, std::string port, diagnostics* d,
                handler<> h) {
    const session_options& o = e->options();
    if (o.mode == transport::implicit_tls || o.tls == tls_policy::none)
        return e->connect(std::move(host), std::move(port), d, std::move(h));
    const bool required = o.tls == tls_policy::required;
    const auto slot = h.get_cancellation_slot();
    auto refuse_or_go_on = [e, required, d](handler<> done, error_code why) {
        if (!required) return complete_now(std::move(done), {});
        if (d != nullptr && why != error::server_refused) d->assign_client(why.message());
        e->abort(error::tls_required);
        complete_now(std::move(done), error::tls_required);
    };
    auto after_stls = [e, d, slot, refuse_or_go_on](handler<> done, error_code ec) mutable {
        if (ec == error::server_refused) return refuse_or_go_on(std::move(done), ec);
        if (ec) return complete_now(std::move(done), ec);
        op_capa(e, d, asio::bind_cancellation_slot(slot, [done = std::move(done)](error_code ec2, capabilities) mutable {
                    complete_now(std::move(done), ec2);
                }));
    };
    auto after_capa = [e, d, slot, refuse_or_go_on, after_stls](handler<> done, error_code ec,
                                                                   const capabilities& caps) mutable {
        if (ec && is_fatal(ec)) return complete_now(std::move(done), ec);
        if (ec || !caps.stls) return refuse_or_go_on(std::move(done), ec ? ec : error_code(error::tls_required));
        op_starttls(e, d, asio::bind_cancellation_slot(slot, [done = std::move(done), after_stls](error_code ec2) mutable {
                        after_stls(std::move(done), ec2);
                    }));
    };
    e->connect(std::move(host), std::move(port), d,
               asio::bind_cancellation_slot(slot, [e, d, slot, after_capa, h = std::move(h)](error_code ec) mutable {
                   if (ec) return complete_now(std::move(h), ec);
                   op_capa(e, d, asio::bind_cancellation_slot(
                                     slot, [h = std::move(h), after_capa](error_code ec2, capabilities caps) mutable {
                                         after_capa(std::move(h), ec2, caps);
                                     }));
               }));
}

void op_login(const std::shared_ptr<engine>& engine_, std::string user, std::string password, diagnostics* d,
              handler<> h);
void op_apop(const std::shared_ptr<engine>& engine_, std::string user, std::string secret, diagnostics* d,
             handler<> h);

/// Logs in with the mechanism the policy picks (or the one named).
void op_authenticate(const std::shared_ptr<engine>& e, credentials c, diagnostics* d, handler<> h) {
    auto r = make_request<auth_request>(*e, command_kind::auth, d, std::move(h));
    if (e->state() != session_state::authorization)
        return e->reject(*r, e->state() == session_state::failed ? error_code(error::session_failed)
                                                                 : error_code(error::wrong_state));
    const auth_context ctx{e->caps() ? &*e->caps() : nullptr, e->has_apop_timestamp(), e->encrypted(),
                           e->options().allow_plaintext_auth};
    auth_mechanism chosen{};
    if (error_code ec = choose_mechanism(c, ctx, chosen)) return e->reject(*r, ec);
    if (chosen == auth_mechanism::user_pass) {
        handler<> taken;
        taken.swap(r->h);
        return op_login(e, c.user, c.password, d, std::move(taken));
    }
    if (chosen == auth_mechanism::apop) {
        handler<> taken;
        taken.swap(r->h);
        return op_apop(e, c.user, c.password, d, std::move(taken));
    }
    std::string token;
    if (chosen == auth_mechanism::xoauth2 || chosen == auth_mechanism::oauthbearer) {
        if (error_code ec = c.oauth_token(token)) return e->reject(*r, ec);
        for (char ch : token)
            if (ch == '\r' || ch == '\n' || ch == '\0') return e->reject(*r, error::argument_has_forbidden_char);
    }
    r->client = make_sasl_client(chosen, c, std::move(token));
    const std::string mechanism(mechanism_name(chosen));
    std::optional<std::string> initial = r->client->start();
    if (initial && !e->options().sasl_initial_response) {
        r->pending_initial = std::move(initial);
    } else if (initial) {
        // With AUTH when it fits the line (RFC 5034: 255 octets, unless the
        // user lifted the limit); otherwise after the server's empty "+ ".
        const std::string encoded = initial->empty() ? std::string("=") : base64_encode(*initial);
        std::string wire;
        if (!encode_command(wire, command_kind::auth, {mechanism, encoded}, e->options().encoding))
            return e->submit(std::move(r), std::move(wire), reply_shape::sasl, true);
        r->pending_initial = std::move(initial);
    }
    encode_and_submit(*e, std::move(r), {mechanism}, true);
}

void op_utf8(const std::shared_ptr<engine>& e, diagnostics* d, handler<> h) {
    encode_and_submit(*e, make_request<status_request>(*e, command_kind::utf8, d, std::move(h)), {});
}

void op_lang(const std::shared_ptr<engine>& e, std::string tag, diagnostics* d, handler<> h) {
    encode_and_submit(*e, make_request<status_request>(*e, command_kind::lang, d, std::move(h)), {tag});
}

void op_lang_list(const std::shared_ptr<engine>& e, diagnostics* d, handler<std::vector<std::string>> h) {
    const std::size_t max_line = e->options().limits.max_line;
    encode_and_submit(*e, make_request<lang_list_request>(*e, command_kind::lang, d, std::move(h), max_line), {});
}

void op_capa(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<capabilities> h) {
    const parser_limits& limits = engine_->options().limits;
    encode_and_submit(*engine_, make_request<capa_request>(*engine_, command_kind::capa, d, std::move(h), limits), {});
}

void op_login(const std::shared_ptr<engine>& engine_, std::string user, std::string password, diagnostics* d, handler<> h) {
    auto pass = make_request<pass_step>(*engine_, command_kind::pass, d, std::move(h));
    if (!engine_->encrypted() && !engine_->options().allow_plaintext_auth &&
        engine_->state() != session_state::failed)
        return engine_->reject(*pass, error::plaintext_auth_refused);
    // Both commands are encoded before either is queued: a bad password
    // must not leave a lone USER behind.
    std::string user_wire, pass_wire;
    if (error_code ec = encode_command(user_wire, command_kind::user, {user}, engine_->options().encoding))
        return engine_->reject(*pass, ec);
    if (error_code ec = encode_command(pass_wire, command_kind::pass, {password}, engine_->options().encoding))
        return engine_->reject(*pass, ec);
    auto shared = std::make_shared<login_shared>();
    auto usr = std::make_unique<user_step>();
    usr->kind = command_kind::user;
    usr->shared = shared;
    usr->group = pass.get();
    pass->shared = shared;
    // USER and PASS may share one write when the server pipelines; PASS is
    // a barrier: what follows runs in the state the login leaves.
    engine_->submit(std::move(usr), std::move(user_wire), reply_shape::single_line, false);
    engine_->submit(std::move(pass), std::move(pass_wire), reply_shape::single_line, true);
}

void op_apop(const std::shared_ptr<engine>& engine_, std::string user, std::string secret, diagnostics* d, handler<> h) {
    auto r = make_request<status_request>(*engine_, command_kind::apop, d, std::move(h));
    std::string_view timestamp;
    if (error_code ec = find_apop_timestamp(engine_->greeting(), timestamp)) {
        if (engine_->state() == session_state::authorization) return engine_->reject(*r, ec);
    }
    const std::string digest = apop_digest(timestamp, secret);
    encode_and_submit(*engine_, std::move(r), {user, digest}, true);
}

void op_stat(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<stat_info> h) {
    encode_and_submit(*engine_, make_request<stat_request>(*engine_, command_kind::stat, d, std::move(h)), {});
}

void op_list(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<std::vector<list_entry>> h) {
    const std::size_t max_line = engine_->options().limits.max_line;
    auto r = make_request<list_request>(*engine_, command_kind::list, d, std::move(h), max_line);
    r->check.cap = engine_->options().limits.max_listing_entries;
    encode_and_submit(*engine_, std::move(r), {});
}

void op_list_one(const std::shared_ptr<engine>& engine_, std::uint64_t n, diagnostics* d, handler<list_entry> h) {
    encode_and_submit(*engine_, make_request<list_one_request>(*engine_, command_kind::list, d, std::move(h)),
                      {number_text(n)});
}

void op_uidl(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<std::vector<uidl_entry>> h) {
    const std::size_t max_line = engine_->options().limits.max_line;
    auto r = make_request<uidl_request>(*engine_, command_kind::uidl, d, std::move(h), max_line);
    r->check.cap = engine_->options().limits.max_listing_entries;
    encode_and_submit(*engine_, std::move(r), {});
}

void op_uidl_one(const std::shared_ptr<engine>& engine_, std::uint64_t n, diagnostics* d, handler<uidl_entry> h) {
    encode_and_submit(*engine_, make_request<uidl_one_request>(*engine_, command_kind::uidl, d, std::move(h)),
                      {number_text(n)});
}

void op_list_uidl(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<std::vector<message_info>> h) {
    const std::size_t max_line = engine_->options().limits.max_line;
    auto uidl = make_request<uidl_part>(*engine_, command_kind::uidl, d, std::move(h), max_line);
    auto shared = std::make_shared<list_uidl_shared>();
    auto list = std::make_unique<list_part>(max_line);
    list->kind = command_kind::list;
    list->shared = shared;
    list->check.cap = engine_->options().limits.max_listing_entries;
    uidl->cap = engine_->options().limits.max_listing_entries;
    list->group = uidl.get();
    uidl->shared = shared;
    encode_and_submit(*engine_, std::move(list), {});
    encode_and_submit(*engine_, std::move(uidl), {});
}

void op_retr(const std::shared_ptr<engine>& engine_, std::uint64_t n, diagnostics* d, handler<std::string> h) {
    auto r = make_request<string_body_request>(*engine_, command_kind::retr, d, std::move(h));
    r->cap = engine_->options().max_message_size;
    const std::uint64_t expected = engine_->expected_size(n);
    r->result.reserve(static_cast<std::size_t>(std::min(expected, r->cap)));
    encode_and_submit(*engine_, std::move(r), {number_text(n)}, false, expected);
}

void op_retr_to(const std::shared_ptr<engine>& engine_, std::uint64_t n, body_sink sink, diagnostics* d, handler<std::uint64_t> h) {
    auto r = make_request<sink_request>(*engine_, command_kind::retr, d, std::move(h));
    r->sink = std::move(sink);
    r->cap = engine_->options().max_message_size;
    encode_and_submit(*engine_, std::move(r), {number_text(n)}, false, engine_->expected_size(n));
}

void op_top(const std::shared_ptr<engine>& engine_, std::uint64_t n, std::uint64_t lines, diagnostics* d, handler<std::string> h) {
    auto r = make_request<string_body_request>(*engine_, command_kind::top, d, std::move(h));
    r->cap = engine_->options().max_message_size;
    encode_and_submit(*engine_, std::move(r), {number_text(n), number_text(lines)});
}

void op_simple(const std::shared_ptr<engine>& engine_, command_kind kind, std::uint64_t n, diagnostics* d, handler<> h) {
    auto r = make_request<status_request>(*engine_, kind, d, std::move(h));
    if (kind == command_kind::dele)
        encode_and_submit(*engine_, std::move(r), {number_text(n)});
    else
        encode_and_submit(*engine_, std::move(r), {}, kind == command_kind::quit);
}

void op_last(const std::shared_ptr<engine>& engine_, diagnostics* d, handler<std::uint64_t> h) {
    encode_and_submit(*engine_, make_request<last_request>(*engine_, command_kind::last, d, std::move(h)), {});
}

void op_fetch(const std::shared_ptr<engine>& engine_, std::vector<std::uint64_t> numbers, fetch_callbacks callbacks, handler<> h) {
    auto batch = std::make_shared<fetch_batch>();
    assign_handler(batch->h, std::move(h));
    batch->ex = engine_->executor();
    batch->callbacks = std::move(callbacks);
    batch->remaining = numbers.size() + 1;  // +1: held until every command is submitted
    for (std::uint64_t n : numbers) {
        auto r = std::make_unique<fetch_one>();
        r->kind = command_kind::retr;
        r->batch = batch;
        r->info = engine_->known(n);
        r->cap = engine_->options().max_message_size;
        r->diag = &r->own_diag;
        r->group = batch.get();
        encode_and_submit(*engine_, std::move(r), {number_text(n)}, false, engine_->expected_size(n));
    }
    batch->one_done({}, [] { return std::tuple<>(); });
}

void op_fetch_uids(const std::shared_ptr<engine>& engine_, std::vector<std::string> uids, fetch_callbacks callbacks,
                              handler<std::vector<std::string>> h) {
    // UIDL, then a pipelined fetch of the numbers found. Each stage's
    // handler carries the user's cancellation slot, so cancelling works in
    // both.
    const auto user_slot = h.get_cancellation_slot();
    auto after_uidl = [engine = engine_, uids = std::move(uids),
                       callbacks = std::move(callbacks),
                       h = std::move(h)](error_code ec, std::vector<uidl_entry> listing) mutable {
        if (ec) {
            asio::dispatch(asio::append(std::move(h), ec ? ec : error_code(asio::error::operation_aborted),
                                        std::vector<std::string>{}));
            return;
        }
        std::unordered_map<std::string_view, std::uint64_t> by_uid;
        for (const auto& e : listing) by_uid.emplace(e.uid, e.number);
        std::vector<std::uint64_t> numbers;
        std::vector<std::string> missing;
        for (auto& uid : uids) {
            if (auto it = by_uid.find(uid); it != by_uid.end())
                numbers.push_back(it->second);
            else
                missing.push_back(std::move(uid));
        }
        const auto slot = h.get_cancellation_slot();
        op_fetch(engine, std::move(numbers), std::move(callbacks),
              asio::bind_cancellation_slot(
                  slot, [h = std::move(h), missing = std::move(missing)](error_code fetch_ec) mutable {
                      asio::dispatch(asio::append(std::move(h), fetch_ec, std::move(missing)));
                  }));
    };
    op_uidl(engine_, nullptr, asio::bind_cancellation_slot(user_slot, std::move(after_uidl)));
}

void op_remove(const std::shared_ptr<engine>& engine_, std::vector<std::uint64_t> numbers, handler<std::vector<error_code>> h) {
    auto batch = std::make_shared<delete_batch>();
    assign_handler(batch->h, std::move(h));
    batch->ex = engine_->executor();
    batch->results.resize(numbers.size());
    batch->remaining = numbers.size() + 1;
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        auto r = std::make_unique<delete_one>();
        r->kind = command_kind::dele;
        r->batch = batch;
        r->index = i;
        r->group = batch.get();
        encode_and_submit(*engine_, std::move(r), {number_text(numbers[i])});
    }
    batch->one_done({}, [b = batch.get()] { return std::make_tuple(std::move(b->results)); });
}

}  // namespace

// ---------------------------------------------------------------------------
// session_core

session_core::session_core(asio::any_io_executor ex, session_options options)
    : engine_(std::make_shared<engine>(std::move(ex), std::move(options))) {}

session_core::session_core(std::unique_ptr<any_stream> stream, session_options options)
    : engine_(std::make_shared<engine>(stream->get_executor(), std::move(options))) {
    engine_->adopt_stream(std::move(stream));
}

session_core::~session_core() {
    if (engine_) engine_->close();
}
session_core::session_core(session_core&&) noexcept = default;
session_core& session_core::operator=(session_core&& other) noexcept {
    if (this != &other) {
        if (engine_) engine_->close();
        engine_ = std::move(other.engine_);
    }
    return *this;
}

asio::any_io_executor session_core::get_executor() const noexcept { return engine_->executor(); }

void session_core::connect(std::string host, std::string port, diagnostics* d, handler<> h) {
    op_connect(engine_, std::move(host), std::move(port), d, std::move(h));
}
void session_core::starttls(diagnostics* d, handler<> h) { op_starttls(engine_, d, std::move(h)); }
void session_core::authenticate(credentials c, diagnostics* d, handler<> h) {
    op_authenticate(engine_, std::move(c), d, std::move(h));
}
void session_core::utf8(diagnostics* d, handler<> h) { op_utf8(engine_, d, std::move(h)); }
void session_core::lang(std::string tag, diagnostics* d, handler<> h) {
    op_lang(engine_, std::move(tag), d, std::move(h));
}
void session_core::lang_list(diagnostics* d, handler<std::vector<std::string>> h) {
    op_lang_list(engine_, d, std::move(h));
}

void session_core::greeting(handler<> h) { engine_->start_greeting(std::move(h)); }


void session_core::capa(diagnostics* d, handler<capabilities> h) { op_capa(engine_, d, std::move(h)); }
void session_core::login(std::string user, std::string password, diagnostics* d, handler<> h) { op_login(engine_, std::move(user), std::move(password), d, std::move(h)); }
void session_core::apop(std::string user, std::string secret, diagnostics* d, handler<> h) { op_apop(engine_, std::move(user), std::move(secret), d, std::move(h)); }
void session_core::stat(diagnostics* d, handler<stat_info> h) { op_stat(engine_, d, std::move(h)); }
void session_core::list(diagnostics* d, handler<std::vector<list_entry>> h) { op_list(engine_, d, std::move(h)); }
void session_core::list_one(std::uint64_t n, diagnostics* d, handler<list_entry> h) { op_list_one(engine_, n, d, std::move(h)); }
void session_core::uidl(diagnostics* d, handler<std::vector<uidl_entry>> h) { op_uidl(engine_, d, std::move(h)); }
void session_core::uidl_one(std::uint64_t n, diagnostics* d, handler<uidl_entry> h) { op_uidl_one(engine_, n, d, std::move(h)); }
void session_core::list_uidl(diagnostics* d, handler<std::vector<message_info>> h) { op_list_uidl(engine_, d, std::move(h)); }
void session_core::retr(std::uint64_t n, diagnostics* d, handler<std::string> h) { op_retr(engine_, n, d, std::move(h)); }
void session_core::retr_to(std::uint64_t n, body_sink sink, diagnostics* d, handler<std::uint64_t> h) { op_retr_to(engine_, n, std::move(sink), d, std::move(h)); }
void session_core::top(std::uint64_t n, std::uint64_t lines, diagnostics* d, handler<std::string> h) { op_top(engine_, n, lines, d, std::move(h)); }
void session_core::simple(command_kind kind, std::uint64_t n, diagnostics* d, handler<> h) { op_simple(engine_, kind, n, d, std::move(h)); }
void session_core::last(diagnostics* d, handler<std::uint64_t> h) { op_last(engine_, d, std::move(h)); }
void session_core::fetch(std::vector<std::uint64_t> numbers, fetch_callbacks callbacks, handler<> h) { op_fetch(engine_, std::move(numbers), std::move(callbacks), std::move(h)); }
void session_core::fetch_uids(std::vector<std::string> uids, fetch_callbacks callbacks,
                              handler<std::vector<std::string>> h) { op_fetch_uids(engine_, std::move(uids), std::move(callbacks), std::move(h)); }
void session_core::remove(std::vector<std::uint64_t> numbers, handler<std::vector<error_code>> h) { op_remove(engine_, std::move(numbers), std::move(h)); }

session_state session_core::state() const noexcept { return engine_->state(); }
const capabilities* session_core::known_capabilities() const noexcept {
    return engine_->caps() ? &*engine_->caps() : nullptr;
}
const std::string& session_core::greeting_text() const noexcept { return engine_->greeting(); }
std::size_t session_core::pipeline_depth() const noexcept { return engine_->depth(); }
bool session_core::encrypted() const noexcept { return engine_->encrypted(); }
bool session_core::tls_resumed() const noexcept { return engine_->tls_resumed(); }
error_code session_core::last_error() const noexcept { return engine_->last_error(); }
bool session_core::failed_on_pipelined_command() const noexcept { return engine_->failed_on_pipelined_command(); }
void session_core::close() noexcept { engine_->close(); }

}  // namespace pop3::detail
