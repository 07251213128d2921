#include "privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"

namespace o365 {

void drop_to_user(const std::string& name) {
    if (::geteuid() != 0 || name == "root") return;
    errno = 0;
    struct passwd* pw = ::getpwnam(name.c_str());
    if (!pw)
        throw ConfigError("[relay] user: no such user '" + name +
                          "' (create it, or install the package that does)");
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (::initgroups(name.c_str(), gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
        throw Error(ErrorClass::temporary,
                    "cannot switch to user " + name + ": " + std::strerror(errno));
    if (uid != 0 && ::setuid(0) == 0)
        throw Error(ErrorClass::temporary, "could switch back to root after dropping to " + name);
}

}  // namespace o365
