#include "fetcher.hpp"
#include "delivery.hpp"
#include "delivery_queue.hpp"
#include "uid_state.hpp"

#include <pop3/poller.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <ostream>
#include <unordered_map>
#include <unordered_set>

#include <sys/resource.h>
#include <unistd.h>

namespace pop3fetch {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

std::string home() { return env("HOME"); }

std::string default_state_dir() {
    std::string base = env("XDG_STATE_HOME");
    if (base.empty()) base = home() + "/.local/state";
    return base + "/pop3fetch";
}

std::string spool_dir() {
    std::string t = env("TMPDIR");
    return t.empty() ? "/tmp" : t;
}

/// A message on its way from the socket to its destination. Small
/// messages collect in memory (the poller's byte budget already counts
/// them) and reach the disk in one delivery job; a large one is written out
/// on the delivery pool whenever `spill_at` octets have collected.
struct message_slot {
    std::string buffer;
    std::unique_ptr<incoming> in;
};
constexpr std::size_t spill_at = 256 * 1024;

struct account_ctx;

/// A message whose transfer has ended, on its way to durable storage.
struct finished_message {
    account_ctx* c = nullptr;
    std::shared_ptr<message_slot> slot;  // null when no body chunk came
    pop3::message_info info;
    error_code ec;      // the transfer's outcome
    error_code result;  // the delivery's: the commit's outcome
    std::string detail;
    asio::any_completion_handler<void(error_code)> committed;
};

void deliver_batch(std::vector<finished_message>& batch);

struct account_ctx {
    account_spec spec;
    std::string id;
    destination* dest = nullptr;
    std::unique_ptr<uid_state> state;
    std::string password;
    // Set on the network thread:
    error_code setup_ec;  // failed before polling (state lock, corrupt state)
    std::string setup_detail;
    bool no_uidl = false;
    bool warned_duplicates = false;
    std::unordered_set<std::string> on_server;
    std::vector<std::uint64_t> stored_before;
    std::uint64_t skipped = 0;
    std::uint64_t oversized = 0;  // over --max-size by LIST: left on the server
    error_code save_ec;           // set on a delivery thread, read after pool.join()
    error_code message_ec;        // the first message that did not arrive whole
    std::string message_detail;
    error_code delivery_ec;  // the first delivery failure
    std::string delivery_detail;
    std::unordered_map<std::uint64_t, std::shared_ptr<message_slot>> slots;  // by message number
    pop3::account_outcome outcome;
    bool done = false;
};

/// Calls `f(key, members)` once for each distinct `key_of(message)` of the
/// batch, in the order the keys first appear; `members` keep the batch's
/// order. (A batch holds a few destinations and accounts at most.)
template <class KeyOf, class F>
void for_each_group(std::vector<finished_message>& batch, KeyOf key_of, F f) {
    using key = decltype(key_of(batch.front()));
    std::vector<key> seen;
    std::vector<finished_message*> members;
    for (const finished_message& first : batch) {
        const key k = key_of(first);
        if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
        seen.push_back(k);
        members.clear();
        for (finished_message& m : batch)
            if (key_of(m) == k) members.push_back(&m);
        f(k, members);
    }
}

/// On a delivery thread: stores each message of `batch` that arrived
/// whole, durably (a Maildir fsyncs new/ once for all of them), and then
/// records their UIDs (one journal append and fdatasync per account). A
/// UID is recorded only once its message is stored: a crash in between
/// fetches the message again (a duplicate), never loses it.
void deliver_batch(std::vector<finished_message>& batch) {
    for (finished_message& m : batch) {
        m.result = m.ec;
        if (m.ec) {
            if (m.slot && m.slot->in) m.c->dest->discard(*m.slot->in);
            continue;
        }
        if (!m.slot) m.slot = std::make_shared<message_slot>();
        if (!m.slot->in) {
            if ((m.result = m.c->dest->begin(m.c->id, m.slot->in))) {
                m.detail = "starting the message";
                continue;
            }
        }
        if (!m.slot->buffer.empty()) {
            if ((m.result = m.slot->in->write(m.slot->buffer))) m.detail = "writing the message";
            std::string().swap(m.slot->buffer);
        }
    }
    // One deliver_all per destination.
    std::vector<incoming*> ins;
    std::vector<error_code> results;
    std::vector<std::string> details;
    std::vector<finished_message*> of;
    for_each_group(batch, [](const finished_message& m) { return m.c->dest; },
                   [&](destination* dest, const std::vector<finished_message*>& members) {
                       ins.clear();
                       of.clear();
                       for (finished_message* m : members) {
                           if (m->result) continue;
                           ins.push_back(m->slot->in.get());
                           of.push_back(m);
                       }
                       if (ins.empty()) return;
                       results.assign(ins.size(), error_code());
                       details.assign(ins.size(), std::string());
                       dest->deliver_all(ins, results, details);
                       for (std::size_t i = 0; i < of.size(); ++i) {
                           of[i]->result = results[i];
                           of[i]->detail = std::move(details[i]);
                       }
                   });
    for (finished_message& m : batch) {
        if (m.result && !m.ec && m.slot && m.slot->in) m.c->dest->discard(*m.slot->in);
        if (m.slot) m.slot->in.reset();
    }
    // One record_all per account.
    std::vector<const std::string*> uids;
    for_each_group(batch, [](const finished_message& m) { return m.c; },
                   [&](account_ctx* c, const std::vector<finished_message*>& members) {
                       if (!c->state) return;
                       uids.clear();
                       of.clear();
                       for (finished_message* m : members) {
                           if (m->result || m->info.uid.empty()) continue;
                           uids.push_back(&m->info.uid);
                           of.push_back(m);
                       }
                       if (const error_code ec = c->state->record_all(uids)) {
                           // Stored all the same: in delete mode the DELE is
                           // safe; in keep mode the message comes again.
                           for (finished_message* m : of)
                               m->detail = "recording UID " + m->info.uid + " in " + c->state->state_path() + ": " +
                                           ec.message();
                       }
                   });
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out;
}

/// "[SYS/PERM] text", safe to print; empty when the server said nothing.
std::string server_words(const pop3::diagnostics& d) {
    std::string out;
    if (!d.code().text.empty()) out = "[" + pop3::printable(d.code().text) + "]";
    if (!d.server_message().empty()) out += (out.empty() ? "" : " ") + pop3::printable(d.server_message());
    return out;
}

std::string human_bytes(std::uint64_t n) {
    char buf[32];
    if (n >= (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / 1e6);
    else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(n) / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
    return buf;
}

class progress_line {
public:
    progress_line(std::ostream& err, bool enabled) : err_(err), enabled_(enabled) {}
    void draw(std::size_t done, std::size_t total, std::uint64_t messages, std::uint64_t bytes, double seconds) {
        if (!enabled_) return;
        char buf[160];
        std::snprintf(buf, sizeof buf, "\r\033[Kaccounts %zu/%zu  messages %llu  %s  %.0f msg/s", done, total,
                      static_cast<unsigned long long>(messages), human_bytes(bytes).c_str(),
                      seconds > 0 ? static_cast<double>(messages) / seconds : 0.0);
        err_ << buf << std::flush;
        drawn_ = true;
    }
    /// Clears the line before other output.
    void clear() {
        if (drawn_) err_ << "\r\033[K" << std::flush;
        drawn_ = false;
    }
    void finish() {
        if (drawn_) err_ << "\n" << std::flush;
        drawn_ = false;
    }

private:
    std::ostream& err_;
    bool enabled_;
    bool drawn_ = false;
};

error_code read_password_file(const std::string& path, std::string& out) {
    std::ifstream in(path);
    if (!in) return error_code(errno, boost::system::system_category());
    std::getline(in, out);
    while (!out.empty() && (out.back() == '\r' || out.back() == '\n')) out.pop_back();
    return {};
}

}  // namespace

std::string to_json(const run_summary& s) {
    std::string j = "{\"accounts\":[";
    for (std::size_t i = 0; i < s.accounts.size(); ++i) {
        const auto& a = s.accounts[i];
        if (i) j += ",";
        j += "{\"account\":\"" + json_escape(a.id) + "\",\"ok\":" + (a.ok ? "true" : "false");
        j += ",\"messages\":" + std::to_string(a.messages) + ",\"bytes\":" + std::to_string(a.bytes);
        j += ",\"deleted\":" + std::to_string(a.deleted) + ",\"skipped\":" + std::to_string(a.skipped);
        j += ",\"failed_messages\":" + std::to_string(a.failed_messages);
        j += ",\"oversized\":" + std::to_string(a.oversized) +
             ",\"size_mismatches\":" + std::to_string(a.size_mismatches);
        j += std::string(",\"pipelining_off\":") + (a.pipelining_off ? "true" : "false");
        j += ",\"attempts\":" + std::to_string(a.attempts) + ",\"retries\":" + std::to_string(a.retries);
        j += ",\"elapsed_ms\":" + std::to_string(a.elapsed.count());
        if (!a.ok) {
            j += ",\"error\":\"" + json_escape(a.ec.message()) + "\"";
            j += ",\"error_category\":\"" + json_escape(a.ec.category().name()) + "\"";
            if (!a.detail.empty()) j += ",\"detail\":\"" + json_escape(a.detail) + "\"";
            if (!a.server_text.empty()) j += ",\"server\":\"" + json_escape(a.server_text) + "\"";
        }
        j += "}";
    }
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", s.seconds);
    j += "],\"totals\":{\"accounts\":" + std::to_string(s.accounts.size()) +
         ",\"failed_accounts\":" + std::to_string(s.failed_accounts) + ",\"messages\":" + std::to_string(s.messages) +
         ",\"bytes\":" + std::to_string(s.bytes) + ",\"seconds\":" + secs +
         "},\"exit_status\":" + std::to_string(s.exit_status) + "}";
    return j;
}

int run(const options& opts, std::ostream& out, std::ostream& err, const run_extras& extras, run_summary* summary_out) {
    auto usage_error = [&](const std::string& m) {
        err << "pop3fetch: " << m << "\n";
        return 2;
    };

    // ---- Accounts -------------------------------------------------------
    const std::string mailhost = env("MAILHOST");
    std::vector<account_spec> specs = extras.accounts;
    for (const auto& url : opts.urls) {
        account_spec a;
        if (parse_url(url, mailhost, a)) {
            return usage_error("'" + url + "': " + make_error_code(errc::bad_url).message());
        }
        a.s = opts.defaults;
        specs.push_back(std::move(a));
    }
    if (!opts.accounts_file.empty()) {
        std::string message;
        if (!read_accounts_file(opts.accounts_file, opts, mailhost, specs, message)) return usage_error(message);
    }
    if (specs.empty()) return usage_error("no account given (pop3fetch --help)");

    std::vector<std::unique_ptr<account_ctx>> ctxs;
    std::unordered_map<std::string, account_ctx*> by_id;
    for (auto& spec : specs) {
        auto c = std::make_unique<account_ctx>();
        c->id = spec.id();
        c->spec = std::move(spec);
        if (!by_id.emplace(c->id, c.get()).second) return usage_error(c->id + " is listed twice");
        ctxs.push_back(std::move(c));
    }

    // ---- Passwords --------------------------------------------------------
    const std::string netrc = home() + "/.netrc";
    for (auto& c : ctxs) {
        const settings& s = c->spec.s;
        if (c->spec.password) {
            c->password = *c->spec.password;
        } else if (!s.password_env.empty()) {
            const char* v = std::getenv(s.password_env.c_str());
            if (v == nullptr) return usage_error(c->id + ": the environment variable " + s.password_env + " is not set");
            c->password = v;
        } else if (!s.password_file.empty()) {
            if (auto ec = read_password_file(s.password_file, c->password))
                return usage_error(c->id + ": cannot read " + s.password_file + ": " + ec.message());
        } else {
            std::optional<std::string> p;
            if (auto ec = netrc_password(netrc, c->spec.host, c->spec.user, p))
                return usage_error(netrc + ": " + ec.message());
            if (!p) return usage_error(c->id + ": " + make_error_code(errc::no_password).message());
            c->password = *p;
        }
    }

    // ---- Destinations and TLS contexts ---------------------------------
    std::map<std::pair<destination_kind, std::string>, std::unique_ptr<destination>> destinations;
    for (auto& c : ctxs) {
        const settings& s = c->spec.s;
        std::string arg = s.dest_arg;
        if (arg.empty()) arg = home() + "/Maildir";
        auto& d = destinations[{s.dest, arg}];
        if (!d) {
            error_code ec;
            switch (s.dest) {
            case destination_kind::maildir: d = make_maildir(arg, ec); break;
            case destination_kind::mbox: d = make_mbox(arg, spool_dir(), 10000, ec); break;
            case destination_kind::mda: d = make_mda(arg, spool_dir(), ec); break;
            }
            if (ec) return usage_error("cannot use " + arg + ": " + ec.message());
        }
        c->dest = d.get();
    }
    std::map<std::string, std::shared_ptr<asio::ssl::context>> tls_contexts;
    auto tls_for = [&](const settings& s) -> std::shared_ptr<asio::ssl::context> {
        if (opts.tls_context) return opts.tls_context;
        auto& ctx = tls_contexts[s.ca_file];
        if (!ctx) {
            pop3::tls_options t;
            t.ca_file = s.ca_file;
            ctx = pop3::make_tls_context(t);
        }
        return ctx;
    };
    for (auto& c : ctxs) {
        const settings& s = c->spec.s;
        if (!s.ca_file.empty() && ::access(s.ca_file.c_str(), R_OK) != 0)
            return usage_error("cannot read the CA file " + s.ca_file + ": " + std::strerror(errno));
    }

    // ---- State (which messages were delivered before) -------------------
    // Descriptors: a lock per account for the whole run, and per session a
    // socket, a journal and a message file or two. Ask for the hard limit;
    // refuse up front, clearly, what would fail half-way.
    {
        rlimit r{};
        if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
            if (r.rlim_cur < r.rlim_max) {
                r.rlim_cur = r.rlim_max;
                ::setrlimit(RLIMIT_NOFILE, &r);
                ::getrlimit(RLIMIT_NOFILE, &r);
            }
            const std::uint64_t sessions = std::min<std::uint64_t>(opts.concurrency, ctxs.size());
            const std::uint64_t needed = ctxs.size() + 4 * sessions + 64;
            if (r.rlim_cur != RLIM_INFINITY && needed > r.rlim_cur)
                return usage_error("the open-file limit (" + std::to_string(r.rlim_cur) + ") is too low for " +
                                   std::to_string(ctxs.size()) + " accounts at --concurrency " +
                                   std::to_string(opts.concurrency) + " (about " + std::to_string(needed) +
                                   " needed): raise it (ulimit -n) or split the accounts");
        }
    }
    for (auto& c : ctxs) {
        const settings& s = c->spec.s;
        const std::string dir = s.state_dir.empty() ? default_state_dir() : s.state_dir;
        std::string detail;
        if (auto ec = uid_state::open(dir, c->id, c->state, detail)) {
            c->setup_ec = ec;
            c->setup_detail = detail;
        }
    }

    // ---- The run ------------------------------------------------------------
    const bool show_progress = opts.progress.value_or(!opts.quiet && ::isatty(2) == 1);
    progress_line progress(err, show_progress);
    asio::io_context ioc(1);
    auto work = asio::make_work_guard(ioc);
    // Delivery threads: up to one per session (fsyncs on a real disk
    // overlap), at most 32, and no more than the accounts can use;
    // delivery_queue wakes only as many as the storage keeps busy.
    const std::uint64_t most_sessions = std::min<std::uint64_t>(opts.concurrency, ctxs.size());
    delivery_queue pool(static_cast<std::size_t>(std::clamp<std::uint64_t>(most_sessions, 2, 32)));
    const auto ex = ioc.get_executor();
    const auto started = clock::now();
    std::uint64_t committed_messages = 0, committed_bytes = 0;
    std::size_t accounts_done = 0;

    auto say_failure = [&](const std::string& id, const error_code& ec, const std::string& detail,
                           const std::string& server) {
        progress.clear();
        err << "pop3fetch: " << id << ": " << ec.message();
        if (!detail.empty()) err << " (" << detail << ")";
        if (!server.empty()) err << "; the server said: " << server;
        err << "\n";
    };

    pop3::message_handler handler;
    handler.open = [&](const pop3::account& a, const pop3::message_info& info) {
        account_ctx* c = by_id.at(a.id);
        auto slot = std::make_shared<message_slot>();
        c->slots[info.number] = slot;
        pop3::body_sink sink;
        // Chunks collect in memory; past spill_at they are written out on
        // the delivery pool, and the session reads nothing more until that
        // is done (back-pressure from the disk). A small message costs no
        // hand-off until it is complete.
        sink.async_write = [&pool, ex, c, slot](std::string_view chunk,
                                                asio::any_completion_handler<void(error_code)> done) {
            slot->buffer.append(chunk);
            if (slot->buffer.size() < spill_at) {
                std::move(done)(error_code());  // taken at once: the session reads on
                return;
            }
            pool.push([ex, c, slot, done = std::move(done)]() mutable {
                error_code ec;
                if (!slot->in) ec = c->dest->begin(c->id, slot->in);
                if (!ec) ec = slot->in->write(slot->buffer);
                slot->buffer.clear();
                asio::post(ex, [done = std::move(done), ec]() mutable { std::move(done)(ec); });
            });
        };
        return sink;
    };
    // Finished messages collect here, then go to the delivery pool as one
    // job (one fsync of new/ and one journal append for them all), and
    // their commits come back as one handler: a message costs no thread
    // hand-off of its own. A batch leaves at most batch_wait after its
    // first message, or sooner when it reaches a cap. (The server often
    // sends a message a write, so waiting for the network thread to go idle
    // would make batches of one.)
    std::vector<finished_message> outbox;
    std::uint64_t outbox_bytes = 0;
    constexpr std::size_t batch_messages = 256;
    constexpr std::uint64_t batch_bytes = 4u << 20;
    constexpr auto batch_wait = std::chrono::milliseconds(2);
    asio::steady_timer batch_timer(ex);
    bool batch_timer_armed = false;
    auto flush = [&] {
        if (outbox.empty()) return;
        outbox_bytes = 0;
        auto batch = std::make_unique<std::vector<finished_message>>(std::move(outbox));
        outbox.clear();
        pool.push([ex, batch = std::move(batch)]() mutable {
            deliver_batch(*batch);
            asio::post(ex, [batch = std::move(batch)]() mutable {
                for (finished_message& m : *batch) {
                    account_ctx* c = m.c;
                    if (m.result && !m.ec && !c->delivery_ec) {
                        c->delivery_ec = m.result;
                        c->delivery_detail = "message " + std::to_string(m.info.number) + ": " + m.detail;
                    } else if (!m.result && !m.detail.empty()) {
                        c->delivery_detail = m.detail;  // a warning: stored, UID not recorded
                    }
                    std::move(m.committed)(m.result);
                }
            });
        });
    };
    handler.done = [&](const pop3::account& a, const pop3::message_info& info, error_code ec,
                       asio::any_completion_handler<void(error_code)> committed) {
        account_ctx* c = by_id.at(a.id);
        if (ec && !pop3::is_fatal(ec) && !c->message_ec) {
            c->message_ec = ec;  // the first message that failed to arrive, said at the end
            c->message_detail = "message " + std::to_string(info.number) + " left on the server";
        }
        std::shared_ptr<message_slot> slot;
        if (auto it = c->slots.find(info.number); it != c->slots.end()) {
            slot = std::move(it->second);
            c->slots.erase(it);
        }
        // Built in place: any_completion_handler's assignment (Boost 1.81)
        // would wrap the handler in itself instead of moving it.
        if (slot) outbox_bytes += slot->buffer.size();
        outbox.push_back(finished_message{c, std::move(slot), info, ec, {}, {}, std::move(committed)});
        if (outbox.size() >= batch_messages || outbox_bytes >= batch_bytes) {
            flush();  // a cancelled timer finds nothing left, or the next batch
            if (batch_timer_armed) batch_timer.cancel();
        } else if (!batch_timer_armed) {
            batch_timer_armed = true;
            batch_timer.expires_after(batch_wait);
            batch_timer.async_wait([&](error_code) {
                batch_timer_armed = false;
                flush();
            });
        }
    };

    pop3::poller_options popts;
    popts.max_sessions = opts.concurrency;
    popts.max_sessions_per_host = opts.concurrency;
    popts.on_event = [&](const pop3::poll_event& e) {
        if (e.kind == pop3::poll_event_kind::message_committed) {
            ++committed_messages;
            committed_bytes += e.octets;
        }
    };
    popts.on_account_done = [&](const pop3::account_outcome& o) {
        account_ctx* c = by_id.at(o.account_id);
        c->outcome = o;
        c->done = true;
        ++accounts_done;
        if (c->state) {
            // Forget UIDs only after a clean session (a session cut short
            // saw an incomplete picture): in keep mode those no longer on the
            // server; in delete mode all of them, as QUIT removed every
            // message stored.
            const bool clean = !o.ec && !c->no_uidl;
            const bool keep = c->spec.s.keep;
            pool.post([c, clean, keep] {
                static const std::unordered_set<std::string> none;
                // On failure the journal still holds what the state lacks.
                // A failed save loses nothing: the journal still holds
                // every UID, and the next run folds it in. Said at the end.
                c->save_ec = c->state->save(!clean ? nullptr : keep ? &c->on_server : &none);
                c->state->release();  // the account is done: its lock and journal go
            });
        }
        if (o.size_mismatches != 0) {
            progress.clear();
            err << "pop3fetch: " << c->id << ": warning: " << o.size_mismatches
                << " messages differed in size from the server's LIST (each delivered whole as received)\n";
        }
        if (o.pipelining_off) {
            progress.clear();
            err << "pop3fetch: " << c->id
                << ": warning: the server advertises PIPELINING but left pipelined commands unanswered; "
                   "its later sessions ran one command at a time\n";
        }
        const std::string server = server_words(o.diag);
        if (o.ec) say_failure(c->id, o.ec, o.diag.client_message(), server);
        else if (c->no_uidl) say_failure(c->id, errc::no_uidl, "", "");
        else if (c->delivery_ec) say_failure(c->id, c->delivery_ec, c->delivery_detail, "");
        else if (o.failed_messages != 0 && c->message_ec)
            say_failure(c->id, c->message_ec,
                        c->message_detail + (o.failed_messages > 1 ? ", and " + std::to_string(o.failed_messages - 1) +
                                                                          " more"
                                                                    : std::string()),
                        "");
        if (!c->delivery_ec && !c->delivery_detail.empty()) {
            // Stored, but its UID could not be recorded: a later run may
            // fetch it again (a duplicate, never a loss).
            progress.clear();
            err << "pop3fetch: " << c->id << ": warning: " << c->delivery_detail
                << " (the message is stored; a later run may fetch it again)\n";
        }
    };

    pop3::poller poller(ex, std::move(handler), popts);
    std::size_t polled = 0;
    for (auto& c : ctxs) {
        if (c->setup_ec) {
            say_failure(c->id, c->setup_ec, c->setup_detail, "");
            continue;
        }
        const settings& s = c->spec.s;
        pop3::account a;
        a.id = c->id;
        a.host = c->spec.host;
        a.port = c->spec.port;
        a.keep = s.keep;
        auto& o = a.options;
        o.mode = c->spec.implicit_tls ? pop3::transport::implicit_tls : pop3::transport::plain;
        o.tls = s.tls;
        if (c->spec.implicit_tls || s.tls != pop3::tls_policy::none) o.tls_context = tls_for(s);
        o.allow_plaintext_auth = s.allow_plaintext_auth;
        o.pipeline.depth = s.pipeline;
        o.connect_timeout = std::chrono::seconds(s.timeout_seconds);
        o.reply_timeout = std::chrono::seconds(s.timeout_seconds);
        o.handshake_timeout = std::chrono::seconds(s.timeout_seconds);
        o.max_message_size = s.max_size;  // a server that lied in LIST: the message is refused, not cut
        // A server that trickles: each reply gets --timeout, plus a second
        // per KiB that LIST promised, from the moment it is due.
        o.command_timeout = std::chrono::seconds(s.timeout_seconds);
        o.min_reply_rate = 1024;
        a.creds.user = c->spec.user;
        a.creds.password = c->password;
        a.creds.mechanism = s.auth;
        if (s.auth == pop3::auth_mechanism::xoauth2 || s.auth == pop3::auth_mechanism::oauthbearer) {
            a.creds.oauth_token = [token = c->password](std::string& t) {
                t = token;
                return error_code();
            };
        }
        account_ctx* cp = c.get();
        a.select = [cp, &progress, &err](const std::vector<pop3::message_info>& listing) {
            cp->on_server.clear();
            cp->stored_before.clear();
            cp->skipped = 0;
            cp->oversized = 0;
            const bool keep = cp->spec.s.keep;
            bool any_uid = false;
            std::unordered_map<std::string_view, int> seen;
            for (const auto& m : listing) {
                if (!m.uid.empty()) {
                    any_uid = true;
                    ++seen[m.uid];
                }
            }
            std::vector<std::uint64_t> fetch;
            if (keep && !listing.empty() && !any_uid) {
                cp->no_uidl = true;  // refuse: fetching everything again is not keep mode
                return fetch;
            }
            bool duplicates = false;
            for (const auto& m : listing) {
                // A message without a UID, or sharing its UID with another,
                // cannot be told apart from others: it is fetched (a
                // duplicate is better than a loss).
                const bool trackable = !m.uid.empty() && seen[m.uid] == 1;
                duplicates = duplicates || (!m.uid.empty() && seen[m.uid] > 1);
                if (trackable) cp->on_server.insert(m.uid);
                if (trackable && cp->state && cp->state->contains(m.uid)) {
                    if (keep) ++cp->skipped;
                    else cp->stored_before.push_back(m.number);  // stored by a run that never reached QUIT
                } else if (m.octets > cp->spec.s.max_size) {
                    ++cp->oversized;  // left on the server, said below
                } else {
                    fetch.push_back(m.number);
                }
            }
            if (cp->oversized != 0) {
                progress.clear();
                err << "pop3fetch: " << cp->id << ": warning: " << cp->oversized
                    << " messages over --max-size (" << human_bytes(cp->spec.s.max_size)
                    << ") left on the server\n";
            }
            if (duplicates && !cp->warned_duplicates) {
                cp->warned_duplicates = true;
                progress.clear();
                err << "pop3fetch: " << cp->id
                    << ": warning: the server gives several messages one UID; they are fetched every time\n";
            }
            return fetch;
        };
        a.already_stored = [cp](const std::vector<pop3::message_info>&) { return cp->stored_before; };
        poller.add(std::move(a));
        ++polled;
    }

    asio::steady_timer ticker(ex);
    asio::signal_set signals(ex);
    bool finished = polled == 0;
    std::function<void()> tick = [&] {
        progress.draw(accounts_done, ctxs.size(), committed_messages, committed_bytes,
                      std::chrono::duration<double>(clock::now() - started).count());
        ticker.expires_after(std::chrono::milliseconds(200));
        ticker.async_wait([&](error_code ec) {
            if (!ec && !finished) tick();
        });
    };
    if (polled != 0) {
        if (extras.handle_signals) {
            signals.add(SIGINT);
            signals.add(SIGTERM);
            signals.async_wait([&](error_code ec, int) {
                if (ec) return;
                progress.clear();
                err << "pop3fetch: stopping: finishing the messages in hand, then QUIT\n";
                poller.stop();
            });
        }
        if (show_progress) tick();
        poller.async_run([&](error_code) {
            finished = true;
            ticker.cancel();
            signals.cancel();
            work.reset();
        });
    } else {
        work.reset();
    }
    ioc.run();
    pool.join();  // the last state saves
    if (show_progress) {
        progress.draw(accounts_done, ctxs.size(), committed_messages, committed_bytes,
                      std::chrono::duration<double>(clock::now() - started).count());
        progress.finish();
    }

    for (auto& c : ctxs) {
        if (c->save_ec) {
            err << "pop3fetch: " << c->id << ": warning: saving " << c->state->state_path() << ": "
                << c->save_ec.message() << " (nothing is lost: its journal keeps every UID for the next run)\n";
        }
    }

    // ---- Report -------------------------------------------------------------
    run_summary sum;
    sum.seconds = std::chrono::duration<double>(clock::now() - started).count();
    for (auto& c : ctxs) {
        account_report r;
        r.id = c->id;
        const auto& o = c->outcome;
        r.messages = o.messages;
        r.bytes = o.bytes;
        r.deleted = o.deleted;
        r.skipped = c->skipped;
        r.oversized = c->oversized;
        r.size_mismatches = o.size_mismatches;
        r.pipelining_off = o.pipelining_off;
        r.failed_messages = o.failed_messages;
        r.attempts = o.attempts;
        r.retries = o.retries.size();
        r.elapsed = o.elapsed;
        if (c->setup_ec) {
            r.ec = c->setup_ec;
            r.detail = c->setup_detail;
        } else if (!c->done) {
            r.ec = errc::interrupted;
        } else if (o.ec) {
            r.ec = o.ec;
            r.detail = o.diag.client_message();
            r.server_text = server_words(o.diag);
        } else if (c->no_uidl) {
            r.ec = errc::no_uidl;
        } else if (c->delivery_ec || o.failed_messages != 0) {
            r.ec = c->delivery_ec ? c->delivery_ec : c->message_ec ? c->message_ec : error_code(pop3::error::server_refused);
            r.detail = c->delivery_ec ? c->delivery_detail
                                      : std::to_string(o.failed_messages) + " messages were not fetched";
        }
        r.ok = !r.ec;
        if (!r.ok) ++sum.failed_accounts;
        sum.messages += r.messages;
        sum.bytes += r.bytes;
        sum.accounts.push_back(std::move(r));
    }
    sum.exit_status = sum.failed_accounts == 0 ? 0 : 1;
    if (extras.print_summary && !opts.quiet) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "pop3fetch: %zu accounts (%llu failed), %llu messages, %s in %.2f s (%.0f msg/s)\n",
                      sum.accounts.size(), static_cast<unsigned long long>(sum.failed_accounts),
                      static_cast<unsigned long long>(sum.messages), human_bytes(sum.bytes).c_str(), sum.seconds,
                      sum.seconds > 0 ? static_cast<double>(sum.messages) / sum.seconds : 0.0);
        err << buf;
    }
    if (opts.json) out << to_json(sum) << "\n" << std::flush;
    const int status = sum.exit_status;
    if (summary_out != nullptr) *summary_out = std::move(sum);
    return status;
}

int main_entry(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    options opts;
    std::string message;
    if (!parse_command_line(args, opts, message)) {
        err << "pop3fetch: " << message << "\n(pop3fetch --help lists the options)\n";
        return 2;
    }
    if (opts.help) {
        out << usage_text();
        return 0;
    }
    if (opts.version) {
        out << "pop3fetch " << POP3FETCH_VERSION << "\n";
        return 0;
    }
    if (opts.demo) return run_demo(opts, out, err);
    run_extras extras;
    extras.handle_signals = true;
    return run(opts, out, err, extras);
}

}  // namespace pop3fetch
