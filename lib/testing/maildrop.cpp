#include <pop3/testing/server.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace pop3::testing {

std::vector<std::string> generate_messages(const maildrop_spec& spec) {
    std::mt19937_64 rng(spec.seed);
    std::lognormal_distribution<double> size_dist(std::log(static_cast<double>(spec.median_size)),
                                                  spec.size_sigma);
    static constexpr std::string_view words[] = {
        "mail", "post", "office", "protocol", "message", "drop", "server", "client", "line",
        "octet", "pipeline", "reply", "status", "unique", "listing", "transaction", "update"};
    std::vector<std::string> out;
    out.reserve(spec.count);
    for (std::size_t i = 0; i < spec.count; ++i) {
        std::size_t target = spec.median_size;
        if (spec.size_sigma > 0) target = static_cast<std::size_t>(size_dist(rng));
        target = std::clamp(target, spec.min_size, spec.max_size);

        std::string m;
        m.reserve(target + 128);
        m += "Return-Path: <sender" + std::to_string(i % 17) + "@example.org>\r\n";
        m += "From: Sender " + std::to_string(i % 17) + " <sender" + std::to_string(i % 17) + "@example.org>\r\n";
        m += "To: user@example.net\r\n";
        m += "Subject: test message " + std::to_string(i + 1) + " of " + std::to_string(spec.count) + "\r\n";
        m += "Message-ID: <" + std::to_string(spec.seed) + "." + std::to_string(i) + "@generated.test>\r\n";
        m += "Date: Sat, 21 Nov 2026 12:00:00 +0000\r\n";
        if (spec.eight_bit) m += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n";
        m += "\r\n";
        while (m.size() + 2 < target) {
            std::string text;
            const auto kind = rng() % 29;
            if (spec.dot_lines && kind == 0) text = ".";
            else if (spec.dot_lines && kind == 1) text = "..";
            else if (spec.dot_lines && kind == 2) text = ".leading dot";
            const std::size_t width = 20 + rng() % 56;
            while (text.size() < width) {
                if (!text.empty() && text != "." && text != "..") text += ' ';
                text += words[rng() % std::size(words)];
                if (spec.eight_bit && rng() % 23 == 0) text += "\xC3\xA9";
            }
            const std::size_t room = target - m.size() - 2;  // text octets that still fit
            text.resize(std::min(text.size(), room));
            if (room - text.size() == 1) text += 'x';  // no line can fill a single octet
            m += text;
            m += "\r\n";
        }
        // Every message ends with CRLF (the header block does, and so does
        // every line), so its wire form is well defined.
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<std::string> read_maildir(const std::string& directory) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (const char* sub : {"cur", "new"}) {
        const fs::path dir = fs::path(directory) / sub;
        if (!fs::is_directory(dir)) continue;
        for (const auto& entry : fs::directory_iterator(dir))
            if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> out;
    for (const auto& path : files) {
        std::ifstream in(path, std::ios::binary);
        std::ostringstream raw;
        raw << in.rdbuf();
        out.push_back(to_crlf(raw.str()));
    }
    return out;
}

std::string to_crlf(std::string_view text) {
    std::string crlf;
    crlf.reserve(text.size() + text.size() / 32 + 2);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) crlf += '\r';
        crlf += text[i];
    }
    if (crlf.size() < 2 || crlf.compare(crlf.size() - 2, 2, "\r\n") != 0) crlf += "\r\n";
    return crlf;
}

std::string to_lf(std::string_view crlf) {
    std::string out;
    out.reserve(crlf.size());
    for (std::size_t i = 0; i < crlf.size(); ++i) {
        if (crlf[i] == '\r' && i + 1 < crlf.size() && crlf[i + 1] == '\n') continue;
        out += crlf[i];
    }
    return out;
}

}  // namespace pop3::testing
