// The Dovecot interoperability tests' main: starts one private Dovecot for
// the whole run and stops it by PID at the end, whatever the tests did.
// Without Dovecot the program says why and exits 77 (meson: skipped),
// unless POP3_REQUIRE_DOVECOT is set (CI), when that is a failure.

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "instance.hpp"

#include <pop3/testing/server.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

namespace pop3::test {

namespace {
dovecot* instance = nullptr;
}

dovecot& the_dovecot() { return *instance; }

std::vector<std::string> interop_corpus(std::uint64_t seed, std::size_t generated) {
    pop3::testing::maildrop_spec spec;
    spec.count = generated;
    spec.seed = seed;
    spec.median_size = 6000;
    std::vector<std::string> out;
    for (const auto& m : pop3::testing::generate_messages(spec)) out.push_back(pop3::testing::to_lf(m));

    std::string dots = "From: dots@example.test\nSubject: dot-stuffing\n\n";
    for (const char* line : {".", "..", "...", ".x", " .", ". ", "a.", "..\t.", "."}) dots += std::string(line) + "\n";
    out.push_back(dots);

    std::string eight = "From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\nSubject: 8-bit\n"
                        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n";
    for (int c = 0x80; c <= 0xFF; ++c) {
        eight += static_cast<char>(c);
        if (c % 32 == 31) eight += '\n';
    }
    eight += "gr\xC3\xBC\xC3\x9F" "e, \xE2\x82\xAC\n";
    out.push_back(eight);

    std::string large = "From: big@example.test\nSubject: large\n\n";
    const std::string line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?-_=+/\\|~@#$%^&*()[]{}<>\n";
    for (std::size_t i = 0; large.size() < (3u << 20); ++i) {
        if (i % 97 == 0) large += ".dot-started line " + std::to_string(i) + "\n";
        large += line;
    }
    out.push_back(large);

    out.push_back("Subject: tiny\n\nx\n");
    out.push_back("Subject: header only\n\n");
    out.push_back("From: crlf@example.test\r\nSubject: stored with CRLF\r\n\r\n.line\r\nend\r\n");
    out.push_back("From: nonl@example.test\nSubject: no final newline\n\nlast line without one");
    return out;
}

}  // namespace pop3::test

int main(int argc, char** argv) {
    std::string why;
    std::unique_ptr<pop3::test::dovecot> d = pop3::test::dovecot::start(why);
    if (!d) {
        const char* require = std::getenv("POP3_REQUIRE_DOVECOT");
        std::fprintf(stderr, "Dovecot interoperability tests: %s\n", why.c_str());
        if (require && *require && std::string(require) != "0") {
            std::fprintf(stderr, "POP3_REQUIRE_DOVECOT is set: this is a failure\n");
            return 1;
        }
        std::fprintf(stderr, "skipped (set POP3_REQUIRE_DOVECOT=1 to make this a failure)\n");
        return 77;
    }
    std::printf("Dovecot %s: POP3+STLS on 127.0.0.1:%u, implicit TLS on 127.0.0.1:%u, master PID %d\n",
                pop3::test::dovecot::version().c_str(), d->plain_port(), d->tls_port(), static_cast<int>(d->pid()));
    pop3::test::instance = d.get();

    doctest::Context context(argc, argv);
    const int status = context.run();

    if (status != 0) {
        // The server's side of a failure.
        const std::string log = d->log();
        const std::size_t from = log.size() > 8000 ? log.size() - 8000 : 0;
        std::fprintf(stderr, "--- the end of Dovecot's log:\n%s\n", log.substr(from).c_str());
    }
    pop3::test::instance = nullptr;
    d.reset();
    return status;
}
