// A private Dovecot for the bench harness (bench/harness.py): starts it,
// fills maildrops with generated messages, puts a delay relay in front of
// it, prints what the harness needs as one JSON line, then answers
// commands on stdin until EOF:
//
//   cpu          -> {"server_cpu": seconds used by Dovecot so far}
//   relay MS     -> {"relay_port": port of a new relay with MS ms each way}
//   bandwidth    -> {"loopback_bytes_per_s": measured over a loopback TCP pair}
//
// Dovecot is stopped (by PID) when stdin closes or the harness dies.
//
//   bench_dovecot_up --group NAME:MAILDROPS:MESSAGES:MEDIAN:MIN:MAX:SIGMA:SEED ...
//                    [--process-limit N]
//
// Users are NAME0 .. NAME<MAILDROPS-1>, all with one password; every
// maildrop of a group holds the same messages. For each group the JSON
// gives the count and an order-free digest of the messages as a fetcher
// stores them (LF line endings), and of the same without a leading
// Return-Path line (what a fetcher that turns it into the envelope keeps).

#include "dovecot.hpp"
#include "relay.hpp"
#include "support/server_process.hpp"

#include <pop3/testing/server.hpp>

#include <openssl/sha.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

struct group {
    std::string name;
    std::size_t maildrops = 1;
    pop3::testing::maildrop_spec spec;
};

group parse_group(const std::string& text) {
    std::vector<std::string> f;
    std::stringstream ss(text);
    for (std::string x; std::getline(ss, x, ':');) f.push_back(x);
    if (f.size() != 8) throw std::invalid_argument("--group NAME:MAILDROPS:MESSAGES:MEDIAN:MIN:MAX:SIGMA:SEED");
    group g;
    g.name = f[0];
    g.maildrops = std::stoull(f[1]);
    g.spec.count = std::stoull(f[2]);
    g.spec.median_size = std::stoull(f[3]);
    g.spec.min_size = std::stoull(f[4]);
    g.spec.max_size = std::stoull(f[5]);
    g.spec.size_sigma = std::stod(f[6]);
    g.spec.seed = std::stoull(f[7]);
    return g;
}

// The first 8 octets of SHA-256, as a number: digests of a set of messages
// are sums of these, so any order gives the same digest.
std::uint64_t message_hash(const std::string& m) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(m.data()), m.size(), d);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | d[i];
    return v;
}

std::string without_return_path(const std::string& lf) {
    if (lf.rfind("Return-Path:", 0) != 0) return lf;
    const std::size_t eol = lf.find('\n');
    return eol == std::string::npos ? std::string() : lf.substr(eol + 1);
}

std::string hex(std::uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%016" PRIx64, v);
    return b;
}

// Pushes `total` octets through a loopback TCP connection between two
// threads and returns octets per second.
double loopback_bandwidth(std::size_t total = std::size_t(1) << 30) {
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0 ||
        ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        return 0;
    std::thread sender([&] {
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
        std::vector<char> buf(256 * 1024, 'x');
        std::size_t sent = 0;
        while (sent < total) {
            const ssize_t n = ::write(c, buf.data(), std::min(buf.size(), total - sent));
            if (n <= 0) break;
            sent += static_cast<std::size_t>(n);
        }
        ::close(c);
    });
    const int s = ::accept(ls, nullptr, nullptr);
    const auto start = std::chrono::steady_clock::now();
    std::vector<char> buf(256 * 1024);
    std::size_t got = 0;
    for (;;) {
        const ssize_t n = ::read(s, buf.data(), buf.size());
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    sender.join();
    ::close(s);
    ::close(ls);
    return secs > 0 ? static_cast<double>(got) / secs : 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<group> groups;
    pop3::test::dovecot::options opts;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--group" && i + 1 < argc)
                groups.push_back(parse_group(argv[++i]));
            else if (a == "--process-limit" && i + 1 < argc)
                opts.pop3_process_limit = static_cast<unsigned>(std::stoul(argv[++i]));
            else
                throw std::invalid_argument("unknown argument: " + a);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_dovecot_up: %s\n", e.what());
        return 2;
    }
    pop3::bench::raise_fd_limit();

    std::string why;
    auto d = pop3::test::dovecot::start(why, opts);
    if (!d) {
        std::fprintf(stderr, "bench_dovecot_up: %s\n", why.c_str());
        return 3;
    }
    const std::string password = "bench-pw";
    std::ostringstream json;
    json << "{\"version\":\"" << pop3::test::dovecot::version() << "\",\"plain_port\":" << d->plain_port()
         << ",\"tls_port\":" << d->tls_port() << ",\"ca_file\":\"" << d->ca_file() << "\",\"password\":\"" << password
         << "\",\"groups\":{";
    const auto seed_start = std::chrono::steady_clock::now();
    bool first = true;
    for (const group& g : groups) {
        std::vector<std::string> lf;
        std::uint64_t digest = 0, digest_norp = 0, wire_bytes = 0, lf_bytes = 0;
        for (const auto& m : pop3::testing::generate_messages(g.spec)) {
            lf.push_back(pop3::testing::to_lf(m));
            wire_bytes += m.size();
            lf_bytes += lf.back().size();
            digest += message_hash(lf.back());
            digest_norp += message_hash(without_return_path(lf.back()));
        }
        for (std::size_t i = 0; i < g.maildrops; ++i) {
            const std::string user = g.name + std::to_string(i);
            d->add_user(user, password);
            d->deliver(user, lf);
        }
        json << (first ? "" : ",") << "\"" << g.name << "\":{\"maildrops\":" << g.maildrops
             << ",\"messages_per_maildrop\":" << lf.size() << ",\"wire_bytes_per_maildrop\":" << wire_bytes
             << ",\"lf_bytes_per_maildrop\":" << lf_bytes << ",\"digest_lf\":\"" << hex(digest * g.maildrops)
             << "\",\"digest_lf_no_return_path\":\"" << hex(digest_norp * g.maildrops) << "\"}";
        first = false;
    }
    const double seed_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - seed_start).count();
    json << "},\"seed_seconds\":" << seed_secs << ",\"server_cpu\":" << d->cpu_seconds() << "}";
    std::cout << json.str() << std::endl;

    std::vector<std::unique_ptr<pop3::test::relay>> relays;
    for (std::string line; std::getline(std::cin, line);) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        if (cmd == "cpu") {
            std::cout << "{\"server_cpu\":" << d->cpu_seconds() << "}" << std::endl;
        } else if (cmd == "relay") {
            double ms = 0;
            in >> ms;
            relays.push_back(std::make_unique<pop3::test::relay>(
                d->plain_port(), std::chrono::microseconds(static_cast<long long>(ms * 1000))));
            std::cout << "{\"relay_port\":" << relays.back()->port() << "}" << std::endl;
        } else if (cmd == "bandwidth") {
            std::cout << "{\"loopback_bytes_per_s\":" << loopback_bandwidth() << "}" << std::endl;
        } else if (cmd == "quit") {
            break;
        } else {
            std::cout << "{\"error\":\"unknown command\"}" << std::endl;
        }
    }
    return 0;
}
