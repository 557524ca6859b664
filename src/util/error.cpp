#include "flowtop/util/error.hpp"

#include <cstring>

namespace flowtop {

std::string errno_message(const std::string& what, int err) {
    return what + ": " + std::strerror(err);
}

}  // namespace flowtop
