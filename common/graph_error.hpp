// graph_error: Microsoft Graph's error answer {"error":{"code":..,"message":..}}
// read into a code and a message fit for a status line (docs/design.md section
// "Graph delivery").
//
// Contract: parse_graph_error() never throws (beyond std::bad_alloc), whatever
// the body: JSON of another shape, HTML from a proxy, binary. The code keeps
// only [A-Za-z0-9._-] and at most 100 bytes (empty when there is none); the
// message is one printable line (control characters become spaces, runs of
// spaces one) of at most 300 bytes, ending in "..." when cut. A body that is not
// Graph's error JSON gives an empty code and, when it has text, its first
// printable bytes as the message.
// Pure function, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace o365 {

struct GraphError {
    std::string code;     // "ErrorAccessDenied"; "" when none
    std::string message;  // "Access is denied. Check credentials and try again."
};

GraphError parse_graph_error(std::string_view body);

}  // namespace o365
