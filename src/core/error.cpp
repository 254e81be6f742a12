#include "stitch/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sstream>

#include "core/assert.h"
#include "core/nearest_name.h"

namespace stitch {

std::string SourceLoc::prefix() const {
  if (!known()) {
    return file.empty() ? "" : file + ": ";
  }
  return fmt::format("{}:{}:{}: ", file, line, column);
}

Error Error::no_such_input(const std::string& owner, const std::string& name,
                           const std::vector<std::string>& inputs) {
  return Error(fmt::format("{} has no input '{}'; its inputs are: {}", owner, name,
                           inputs.empty() ? "(none)" : fmt::format("{}", fmt::join(inputs, ", "))));
}

SpecError SpecError::unknown_name(const SourceLoc& loc, const std::string& what,
                                  const std::string& name,
                                  const std::vector<std::string>& candidates,
                                  const std::string& otherwise, const std::string& where) {
  const std::string near = nearest_name(name, candidates);
  const std::string hint =
      near.empty() ? otherwise : fmt::format("\n  fix: did you mean '{}'?", near);
  return SpecError(fmt::format("{}unknown {} '{}'{}{}", loc.prefix(), what, name,
                               where.empty() ? "" : " in " + where, hint));
}

ShapeError ShapeError::with_fix(const SourceLoc& loc, const std::string& what,
                                const std::string& fix) {
  return ShapeError(fmt::format("{}{}\n  fix: {}", loc.prefix(), what, fix));
}

IoError IoError::at(const std::filesystem::path& file, const std::string& what) {
  return IoError(fmt::format("{}: {}", file.string(), what));
}

namespace detail {

void internal_error(const char* file, int line, const char* condition, const std::string& message) {
  const std::string_view path(file);
  const size_t src = path.rfind("src/");
  throw Error(
      fmt::format("internal error in {}:{} ({}): {}\n  this is a bug in stitch, not in "
                  "what you gave it; please report it with the command that hit it",
                  src == path.npos ? path : path.substr(src), line, condition, message));
}

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

namespace {
/// The length of the UTF-8 sequence at `i` (1-4), or 0 when it is not one.
size_t utf8_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) >> 6) != 0x2) return 0;
  }
  if (n == 2 && c < 0xc2) return 0;  // overlong
  return n;
}
}  // namespace

std::string terminal_safe(std::string_view message) {
  constexpr size_t kLine = 2000, kTotal = 20000;
  std::string out;
  size_t line = 0;
  for (size_t i = 0; i < message.size();) {
    if (out.size() >= kTotal) {
      out += fmt::format(" ... ({} more bytes left out)", message.size() - i);
      break;
    }
    const char c = message[i];
    if (c == '\n') {
      out += c;
      line = 0;
      ++i;
      continue;
    }
    if (line >= kLine) {
      const size_t end = message.find('\n', i);
      const size_t skipped = (end == std::string_view::npos ? message.size() : end) - i;
      out += fmt::format(" ... ({} more bytes left out)", skipped);
      i += skipped;
      continue;
    }
    const size_t n = utf8_length(message, i);
    const auto u = static_cast<unsigned char>(c);
    if (c == '\t') {
      out += ' ';
      ++i;
      ++line;
    } else if (n == 0 || (n == 1 && (u < 0x20 || u == 0x7f))) {
      out += fmt::format("\\x{:02x}", u);
      ++i;
      line += 4;
    } else {
      out.append(message.substr(i, n));
      i += n;
      line += n;
    }
  }
  return out;
}

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
