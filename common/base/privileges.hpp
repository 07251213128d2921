// privileges: switching from root to the service user ([relay] user), so that
// every process that touches the token cache runs as the same user (the cache
// refuses files owned by anyone else).
//
// Contract: drop_to_user(name) does nothing when the process is not root or
// when name is "root"; otherwise it sets the supplementary groups, the group
// and the user of `name` (in that order) and verifies that root cannot be
// regained. Throws ConfigError naming the user when it does not exist, and
// Error(temporary) when a system call fails. Call it before starting threads.
#pragma once

#include <string>

namespace o365 {

void drop_to_user(const std::string& name);

}  // namespace o365
