#ifndef POP3_LIMITS_HPP
#define POP3_LIMITS_HPP

#include <cstddef>
#include <cstdint>
#include <limits>

namespace pop3 {

/// Caps on what a server can make the client hold. Every one is enforced
/// with its own error code; none can be turned off, only raised.
struct parser_limits {
    /// A status line, CRLF included. RFC 2449 section 4 allows 512 octets.
    std::size_t max_status_line = 512;
    /// One multi-line body, after dot-unstuffing. Bodies are streamed, so
    /// the default is no practical limit; set it to cap a message.
    std::uint64_t max_body = std::numeric_limits<std::uint64_t>::max();
    /// A line of a CAPA, LIST, UIDL or header body that the library parses.
    std::size_t max_line = 8 * 1024;
    /// Lines of one CAPA reply.
    std::size_t max_capabilities = 256;
    /// Entries of one LIST or UIDL reply (a maildrop of more messages is
    /// refused with too_many_entries; raise it for such maildrops).
    std::size_t max_listing_entries = 1u << 20;
    /// A header block parsed into fields (TOP n 0), and its number of fields.
    std::size_t max_header_bytes = 1024 * 1024;
    std::size_t max_header_fields = 4096;
};

}  // namespace pop3

#endif
