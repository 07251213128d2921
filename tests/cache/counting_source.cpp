#include "counting_source.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "unique_fd.hpp"

namespace o365::test {

namespace {

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    std::string t = s.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == ' '))
        t.pop_back();
    return t;
}

void put(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << text << "\n";
        if (!f) throw Error(ErrorClass::temporary, "counting source: cannot write " + tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error(ErrorClass::temporary, "counting source: cannot rename " + tmp);
}

std::string random_hex() {
    std::random_device rd;
    std::ostringstream o;
    o << std::hex << rd() << rd();
    return o.str();
}

}  // namespace

TokenGrant CountingSource::acquire(const Account& account, const std::string& refresh_token) {
    TokenGrant g;
    long n = 0;
    bool refused = false;
    {
        UniqueFd lock(::open((dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!lock || ::flock(lock.get(), LOCK_EX) != 0)
            throw Error(ErrorClass::temporary, "counting source: cannot lock " + dir_ + "/lock");
        std::string c = slurp(dir_ + "/count");
        n = (c.empty() ? 0 : std::stol(c)) + 1;
        put(dir_ + "/count", std::to_string(n));
        if (account.flow == Flow::delegated) {
            std::string current = slurp(dir_ + "/refresh");
            if (current.empty() || refresh_token != current) {
                refused = true;
            } else {
                g.refresh_token = "rt-" + std::to_string(n) + "-" + random_hex();
                put(dir_ + "/refresh", g.refresh_token);
            }
        }
        std::ofstream log(dir_ + "/requests", std::ios::app);
        log << n << " " << ::getpid() << " " << (refused ? "refused" : "ok") << "\n";
    }
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    if (refused)
        throw OAuthError(ErrorClass::configuration,
                         "invalid_grant: AADSTS70000: the refresh token is not the latest one "
                         "issued (counting source)",
                         "invalid_grant", "AADSTS70000", 400);
    g.access_token =
        "tok-" + std::to_string(n) + "-" + std::to_string(::getpid()) + "-" + random_hex();
    g.expires_in = expires_in_;
    return g;
}

}  // namespace o365::test
