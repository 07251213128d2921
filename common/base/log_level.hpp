// log_level: the severity of a log line, shared by the configuration ([relay]
// log_level) and the logger. A bare enum at the bottom of the layers: it depends
// on nothing, so log.hpp need not include the configuration. Cannot fail;
// thread-safe (a type only).
#pragma once

namespace o365 {

enum class LogLevel { debug, info, warning, error };

}  // namespace o365
