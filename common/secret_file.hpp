// secret_file: reads a credential file (client secret, private key) safely.
//
// Contract: read_secret_file(path) refuses, with a ConfigError naming the file
// and the fix, a file that group or other may read, a file that is not a
// regular file, and a symlink owned by anyone but the reading user or root.
// Trailing newlines and spaces are not part of the secret. check_secret_file()
// applies the same checks without keeping the content (for --check-config).
// Thread-safe (no shared state).
#pragma once

#include <string>

namespace o365 {

std::string read_secret_file(const std::string& path);
void check_secret_file(const std::string& path);

}  // namespace o365
