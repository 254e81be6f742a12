#include "stitch/error.h"

#include <fmt/format.h>

namespace stitch {

std::string SourceLoc::prefix() const {
  if (!known()) {
    return file.empty() ? "" : file + ": ";
  }
  return fmt::format("{}:{}:{}: ", file, line, column);
}

namespace detail {
std::string first_line(const std::string& message) {
  // TorchScript errors put the useful line first; keep it and drop the
  // source excerpt and C++ frames that follow.
  auto start = message.find_first_not_of(" \n");
  if (start == std::string::npos) {
    return "unknown error";
  }
  auto end = message.find('\n', start);
  return message.substr(start, end == std::string::npos ? end : end - start);
}

std::string short_message(const c10::Error& e) {
  return first_line(e.what_without_backtrace());
}
}  // namespace detail

}  // namespace stitch
