// secret_file: reads a credential file (client secret, private key) safely.
//
// Contract: read_secret_file(path) refuses, with a ConfigError naming the file
// and the fix, a file that group or other may read, a file that is not a
// regular file, and a symlink owned by anyone but the reading user or root.
// Trailing newlines and spaces are not part of the secret. check_secret_file()
// applies the same checks without keeping the content (for --check-config).
// Nothing can block: the file is opened O_NONBLOCK and anything that is not a
// regular file (a FIFO, a device, a socket, a directory) is refused by fstat
// before the first read.
// read_credential_file(path, what, max) reads a public credential file (a
// certificate) with the same non-blocking open and regular-file check, but
// without the mode check; `what` names it in errors ("certificate_file").
// Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <string>

namespace o365 {

std::string read_secret_file(const std::string& path);
void check_secret_file(const std::string& path);
std::string read_credential_file(const std::string& path, const std::string& what,
                                 std::size_t max = 1 << 20);

}  // namespace o365
