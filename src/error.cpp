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
std::string short_message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  // TorchScript errors put the useful line first; keep it and drop the
  // source excerpt and C++ frames that follow.
  auto start = msg.find_first_not_of(" \n");
  if (start == std::string::npos) {
    return "unknown LibTorch error";
  }
  msg = msg.substr(start);
  return msg.substr(0, msg.find('\n'));
}
}  // namespace detail

}  // namespace stitch
