#include "dovecot.hpp"

#include "../../lib/testing/certificate.hpp"

#include <boost/asio/buffer.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pop3::test {

namespace {

using clock = std::chrono::steady_clock;

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
    }
    ::chmod(tmp.c_str(), mode);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void remove_tree(const std::string& path) {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
}

void make_dir(const std::string& path, mode_t mode) {
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
    ::chmod(path.c_str(), mode);
}

// A loopback port free at the moment of asking. Dovecot binds it a little
// later; start() tries again with new ports if another process was faster.
unsigned short free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    unsigned short port = 0;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) ::close(fd);
    return port;
}

// Connects to the port; with `greeting`, also reads a line starting "+OK".
bool answers(unsigned short port, bool greeting) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (ok && greeting) {
        std::string line;
        const auto deadline = clock::now() + std::chrono::seconds(5);
        while (line.find('\n') == std::string::npos && clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            char buf[256];
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<std::size_t>(n));
        }
        ok = line.rfind("+OK", 0) == 0;
    }
    ::close(fd);
    return ok;
}

// Directories left by test programs that died before their destructor
// ran (their Dovecot died with them: PR_SET_PDEATHSIG).
void remove_abandoned(const std::string& tmp) {
    DIR* d = ::opendir(tmp.c_str());
    if (d == nullptr) return;
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.rfind("pop3-dovecot-", 0) != 0) continue;
        const std::string dir = tmp + "/" + name;
        struct stat st{};
        if (::stat(dir.c_str(), &st) != 0 || st.st_uid != ::getuid()) continue;
        const long owner = std::atol(read_text(dir + "/owner.pid").c_str());
        if (owner > 0 && ::kill(static_cast<pid_t>(owner), 0) != 0 && errno == ESRCH) stale.push_back(dir);
    }
    ::closedir(d);
    for (const auto& dir : stale) remove_tree(dir);
}

bool is_executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

std::string current_user_name() {
    if (const passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
    return {};
}

}  // namespace

std::string dovecot::find_binary() {
    if (const char* env = std::getenv("POP3_DOVECOT"); env && *env) return is_executable(env) ? env : "";
    if (is_executable("/usr/sbin/dovecot")) return "/usr/sbin/dovecot";
    if (const char* path = std::getenv("PATH")) {
        std::istringstream dirs(path);
        for (std::string d; std::getline(dirs, d, ':');)
            if (is_executable(d + "/dovecot")) return d + "/dovecot";
    }
    return {};
}

std::string dovecot::version() {
    const std::string bin = find_binary();
    if (bin.empty()) return {};
    std::string out;
    if (FILE* p = ::popen((bin + " --version 2>/dev/null").c_str(), "r")) {
        char buf[256];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        ::pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

std::unique_ptr<dovecot> dovecot::start(std::string& why, options opts) {
    std::unique_ptr<dovecot> d(new dovecot);
    d->binary_ = find_binary();
    if (d->binary_.empty()) {
        why = "Dovecot is not installed (Debian: apt-get install dovecot-core dovecot-pop3d)";
        return nullptr;
    }

    // Who reads the mail. As root, Dovecot refuses mail users with UID 0
    // and runs its login processes unprivileged: use the accounts the
    // Debian package made. As anyone else, everything runs as that user.
    if (::getuid() == 0) {
        const passwd* pw = ::getpwnam("dovecot");
        if (pw == nullptr || ::getpwnam("dovenull") == nullptr) {
            why = "running as root but the users 'dovecot' and 'dovenull' do not exist";
            return nullptr;
        }
        d->mail_uid_ = pw->pw_uid;
        d->mail_gid_ = pw->pw_gid;
    } else {
        d->mail_uid_ = ::getuid();
        d->mail_gid_ = ::getgid();
    }

    const std::string tmp = (std::getenv("TMPDIR") && *std::getenv("TMPDIR")) ? std::getenv("TMPDIR") : "/tmp";
    remove_abandoned(tmp);
    std::string base = tmp + "/pop3-dovecot-XXXXXX";
    if (::mkdtemp(base.data()) == nullptr) {
        why = "cannot create a temporary directory: " + std::string(std::strerror(errno));
        return nullptr;
    }
    d->dir_ = base;
    try {
        // The mail user and Dovecot's unprivileged processes must reach it.
        make_dir(d->dir_, 0755);
        write_text(d->dir_ + "/owner.pid", std::to_string(::getpid()) + "\n");
        make_dir(d->dir_ + "/mail", 0755);
        d->chown_to_mail_user(d->dir_ + "/mail");

        namespace certs = pop3::testing::detail;
        const auto ca = certs::make_ca("pop3 test CA for Dovecot");
        const auto leaf = certs::make_leaf(ca, {"localhost"}, {"127.0.0.1"});
        d->ca_pem_ = ca.certificate_pem;
        write_text(d->ca_file(), ca.certificate_pem);
        write_text(d->dir_ + "/server.pem", leaf.certificate_pem);
        write_text(d->dir_ + "/server.key", leaf.key_pem, 0600);
        make_dir(d->dir_ + "/users", 0755);
    } catch (const std::exception& e) {
        why = e.what();
        return nullptr;
    }

    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string reason;
        if (d->launch(reason, opts)) return d;
        why = reason;
        if (reason.find("Address already in use") == std::string::npos) break;
    }
    return nullptr;
}

bool dovecot::launch(std::string& why, const options& opts) {
    plain_port_ = free_port();
    tls_port_ = free_port();
    if (plain_port_ == 0 || tls_port_ == 0 || plain_port_ == tls_port_) {
        why = "no free loopback port";
        return false;
    }
    const bool root = ::getuid() == 0;
    const std::string me = current_user_name();
    std::ostringstream conf;
    conf << "# A private instance for pop3's tests; nothing here is the system's.\n"
         << "base_dir = " << dir_ << "/run\n"
         << "state_dir = " << dir_ << "/state\n"
         << "instance_name = pop3-test-" << ::getpid() << "\n"
         << "protocols = pop3\n"
         << "listen = 127.0.0.1\n"
         << "log_path = " << dir_ << "/dovecot.log\n"
         << "ssl = yes\n"
         << "ssl_cert = <" << dir_ << "/server.pem\n"
         << "ssl_key = <" << dir_ << "/server.key\n"
         << "auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 apop\n"
         << "auth_failure_delay = 0\n"
         << "auth_verbose = yes\n"
         << "default_internal_user = " << (root ? "dovecot" : me) << "\n"
         << "default_login_user = " << (root ? "dovenull" : me) << "\n"
         << "first_valid_uid = 1\n"
         << "mail_location = maildir:" << dir_ << "/mail/%u\n"
         << "pop3_lock_session = yes\n"
         // A passwd-file per user: Dovecot reads a new user's file at its
         // first login, where a shared file changed within the same second
         // might not be reread.
         << "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN " << dir_ << "/users/%u\n}\n"

         << "userdb {\n  driver = static\n  args = uid=" << mail_uid_ << " gid=" << mail_gid_ << " home=" << dir_
         << "/mail/%u\n}\n"
         << "service pop3-login {\n"
         << "  inet_listener pop3 {\n    port = " << plain_port_ << "\n  }\n"
         << "  inet_listener pop3s {\n    port = " << tls_port_ << "\n    ssl = yes\n  }\n"
         // Reuse login and pop3 processes: a fresh process per connection
         // costs 8-40 ms of server time per login.
         << "  service_count = 0\n  process_min_avail = 1\n  chroot =\n}\n"
         << "service pop3 {\n  service_count = 0\n  process_min_avail = 1\n  process_limit = "
         << opts.pop3_process_limit << "\n}\n"
         // Every pop3 and login process may hold an auth connection.
         << "service auth {\n  client_limit = " << opts.pop3_process_limit + 200 << "\n}\n"
         << "default_process_limit = " << std::max(100u, opts.pop3_process_limit) << "\n"
         << "service anvil {\n  chroot =\n}\n";
    const std::string conf_path = dir_ + "/dovecot.conf";
    try {
        write_text(conf_path, conf.str());
    } catch (const std::exception& e) {
        why = e.what();
        return false;
    }
    const std::string output = dir_ + "/master-output.txt";

    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
        why = "fork: " + std::string(std::strerror(errno));
        return false;
    }
    if (pid_ == 0) {
        // Should the test program die without stopping it, the kernel
        // sends the master SIGTERM, and the master ends its children.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(1);
        const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::close(fd);
        }
        ::execl(binary_.c_str(), "dovecot", "-F", "-c", conf_path.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }

    const auto deadline = clock::now() + std::chrono::seconds(30);
    while (clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            why = "dovecot exited at start:\n" + read_text(output) + log();
            return false;
        }
        if (answers(plain_port_, true) && answers(tls_port_, false)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    why = "dovecot did not answer within 30 s:\n" + read_text(output) + log();
    stop();
    return false;
}

void dovecot::stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (clock::now() > deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
}

dovecot::~dovecot() {
    stop();
    if (!dir_.empty() && !std::getenv("POP3_KEEP_DOVECOT_DIR")) remove_tree(dir_);
}

std::shared_ptr<boost::asio::ssl::context> dovecot::client_tls_context() const {
    auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
    ctx->set_verify_mode(boost::asio::ssl::verify_peer);
    ctx->add_certificate_authority(boost::asio::buffer(ca_pem_));
    return ctx;
}

void dovecot::write_passwd(const std::string& name, const std::string& password) const {
    // Dovecot's auth process (an unprivileged user) reads it.
    write_text(dir_ + "/users/" + name, name + ":{PLAIN}" + password + "::::::\n", 0644);
}

void dovecot::chown_to_mail_user(const std::string& path) const {
    if (::getuid() == 0 && ::chown(path.c_str(), mail_uid_, mail_gid_) != 0)
        throw std::runtime_error("cannot chown " + path + ": " + std::strerror(errno));
}

void dovecot::add_user(const std::string& name, const std::string& password) {
    if (name.find_first_of(":\r\n/") != std::string::npos || password.find_first_of(":\r\n") != std::string::npos)
        throw std::invalid_argument("user names and passwords for the passwd-file have no ':', '/' or line breaks");
    const std::string home = maildir(name);
    make_dir(home, 0700);
    chown_to_mail_user(home);
    for (const char* sub : {"/cur", "/new", "/tmp"}) {
        make_dir(home + sub, 0700);
        chown_to_mail_user(home + sub);
    }
    write_passwd(name, password);
}

std::vector<std::string> dovecot::deliver(const std::string& user, const std::vector<std::string>& messages) {
    std::vector<std::string> names;
    const std::string home = maildir(user);
    for (const auto& m : messages) {
        char name[96];
        std::snprintf(name, sizeof name, "%lld.M%luP%d.pop3test", static_cast<long long>(::time(nullptr)),
                      ++delivered_, static_cast<int>(::getpid()));
        const std::string tmp = home + "/tmp/" + name;
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << m;
            if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
        }
        ::chmod(tmp.c_str(), 0600);
        chown_to_mail_user(tmp);
        if (::rename(tmp.c_str(), (home + "/new/" + name).c_str()) != 0)
            throw std::runtime_error("cannot move " + tmp + " into new/");
        names.emplace_back(name);
    }
    return names;
}

std::map<std::string, std::string> dovecot::stored(const std::string& user) const {
    std::map<std::string, std::string> out;
    for (const char* sub : {"/new/", "/cur/"}) {
        const std::string dir = maildir(user) + sub;
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) continue;
        while (dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name.empty() || name[0] == '.') continue;
            out[name.substr(0, name.find(':'))] = read_text(dir + name);
        }
        ::closedir(d);
    }
    return out;
}

std::string dovecot::log() const { return read_text(dir_ + "/dovecot.log"); }

namespace {

// Fields of /proc/PID/stat after the command name: state is field 3;
// ppid 4; utime 14, stime 15, cutime 16, cstime 17.
bool read_stat(pid_t pid, long& ppid, double& own_ticks, double& children_ticks) {
    const std::string text = read_text("/proc/" + std::to_string(pid) + "/stat");
    const std::size_t close = text.rfind(')');
    if (close == std::string::npos) return false;
    std::istringstream in(text.substr(close + 2));
    std::vector<std::string> f;
    for (std::string x; in >> x;) f.push_back(x);
    if (f.size() < 15) return false;  // f[0] is field 3
    ppid = std::atol(f[1].c_str());
    own_ticks = std::atof(f[11].c_str()) + std::atof(f[12].c_str());
    children_ticks = std::atof(f[13].c_str()) + std::atof(f[14].c_str());
    return true;
}

}  // namespace

double dovecot::cpu_seconds() const {
    if (pid_ <= 0) return 0;
    double ticks = 0;
    long ppid = 0;
    double own = 0, children = 0;
    if (read_stat(pid_, ppid, own, children)) ticks += own + children;
    // Dovecot's services are the master's children.
    if (DIR* d = ::opendir("/proc")) {
        while (dirent* e = ::readdir(d)) {
            const pid_t p = static_cast<pid_t>(std::atol(e->d_name));
            if (p <= 0 || p == pid_) continue;
            if (read_stat(p, ppid, own, children) && ppid == pid_) ticks += own + children;
        }
        ::closedir(d);
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace pop3::test
