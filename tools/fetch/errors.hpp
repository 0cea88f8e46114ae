#ifndef POP3FETCH_ERRORS_HPP
#define POP3FETCH_ERRORS_HPP

// The fetcher's own error codes (category "pop3fetch"); system calls
// report errno in the system category, the library its pop3 errors.

#include <boost/system/error_code.hpp>

namespace pop3fetch {

enum class errc {
    mbox_lock_timeout = 1,  ///< another process held the mbox lock too long
    mda_failed,             ///< the MDA exited with a non-zero status or was killed
    state_corrupt,          ///< a keep-mode state file that does not parse: refused, never taken as empty
    state_in_use,           ///< another run holds the account's state lock
    no_uidl,                ///< keep mode needs UIDL and the server has none
    no_password,            ///< no password from --password-env, --password-file or ~/.netrc
    netrc_unsafe,           ///< ~/.netrc holds a password and others can read it
    bad_url,                ///< an account URL that does not parse
    name_clash,             ///< no unique Maildir name after many attempts
    interrupted,            ///< the run was stopped (SIGINT/SIGTERM) before the account finished
};

const boost::system::error_category& fetch_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), fetch_category()};
}

}  // namespace pop3fetch

template <>
struct boost::system::is_error_code_enum<pop3fetch::errc> : std::true_type {};

#endif
