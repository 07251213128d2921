#include "error.hpp"

namespace o365 {

std::string_view to_string(ErrorClass c) noexcept {
    switch (c) {
        case ErrorClass::temporary:
            return "temporary";
        case ErrorClass::permanent:
            return "permanent";
        case ErrorClass::configuration:
            return "configuration";
    }
    return "unknown";
}

}  // namespace o365
