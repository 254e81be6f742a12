#include "stitch/error.h"

#include <fmt/format.h>

#include <sstream>

namespace stitch {

std::string SourceLoc::prefix() const {
  if (!known()) {
    return file.empty() ? "" : file + ": ";
  }
  return fmt::format("{}:{}:{}: ", file, line, column);
}

namespace detail {
namespace {
/// The line with tabs as spaces and other control characters (a NUL, an
/// escape, a stray carriage return from a corrupt file's text) as '?', so
/// that an error stays one printable line.
std::string printable(std::string line) {
  for (char& c : line) {
    if (c == '\t') {
      c = ' ';
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = '?';
    }
  }
  return line;
}
}  // namespace

std::string count_of(int64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

std::string first_line(const std::string& message) {
  // TorchScript errors put the useful line first; keep it and drop the
  // source excerpt and C++ frames that follow. An error raised inside a
  // running model is the exception: its first line only says that an
  // operation failed, and the error itself comes last, after a TorchScript
  // traceback.
  std::istringstream text(message);
  std::string line, first, last;
  while (std::getline(text, line)) {
    const size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos) continue;
    const size_t end = line.find_last_not_of(" \t\r");
    last = line.substr(start, end + 1 - start);
    if (first.empty()) first = last;
  }
  if (first.empty()) return "unknown error";
  return printable(first.rfind("The following operation failed", 0) == 0 ? last : first);
}

std::string short_message(const c10::Error& e) {
  return first_line(e.what_without_backtrace());
}
}  // namespace detail

}  // namespace stitch
