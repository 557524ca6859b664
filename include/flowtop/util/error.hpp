#pragma once
// One exception type for setup errors: its message is written for the user and main prints it
// as "flowtop: <message>". Usage errors are a separate type because they exit 2, not 1.
#include <stdexcept>
#include <string>

namespace flowtop {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class UsageError : public Error {
  public:
    using Error::Error;
};

// "what: strerror(errno)" for messages that wrap a failed system call.
std::string errno_message(const std::string& what, int err);

}  // namespace flowtop
