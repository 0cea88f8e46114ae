#include "errors.hpp"

#include <string>

namespace pop3fetch {
namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "pop3fetch"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::mbox_lock_timeout: return "timed out waiting for the mbox lock";
        case errc::mda_failed: return "the MDA did not deliver the message";
        case errc::state_corrupt: return "the keep-mode state file is corrupt (refused; move it away to start afresh)";
        case errc::state_in_use: return "another pop3fetch run is using this account's state";
        case errc::no_uidl: return "keep mode needs UIDL, and the server does not offer it";
        case errc::no_password: return "no password (give --password-env, --password-file or a ~/.netrc entry)";
        case errc::netrc_unsafe: return "~/.netrc holds passwords and others can read it (chmod 600 it)";
        case errc::bad_url: return "not an account URL (pop3://USER@HOST[:PORT] or pop3s://USER@HOST[:PORT])";
        case errc::name_clash: return "no unique Maildir file name";
        case errc::interrupted: return "stopped before the account was done";
        }
        return "pop3fetch error " + std::to_string(ev);
    }
};

}  // namespace

const boost::system::error_category& fetch_category() noexcept {
    static const category c;
    return c;
}

}  // namespace pop3fetch
