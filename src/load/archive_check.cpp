#include "load/archive_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

#include "util/zip_reader.h"

namespace stitch {

namespace {

struct Nesting {
  int depth = 0;
  int line = 0;
};

/// The deepest nesting of TorchScript code: open brackets, or indentation
/// (2 spaces a level, as torch.jit.save writes), outside string literals.
Nesting deepest(std::string_view code) {
  Nesting worst;
  int brackets = 0, line = 1;
  char quote = 0;
  bool line_start = true;
  int indent = 0;
  for (size_t i = 0; i < code.size(); ++i) {
    const char c = code[i];
    if (c == '\n') {
      ++line;
      line_start = true;
      indent = 0;
      continue;
    }
    if (line_start) {
      if (c == ' ' || c == '\t') {
        indent += c == '\t' ? 8 : 1;
        if (indent / 2 > worst.depth) worst = {indent / 2, line};
        continue;
      }
      line_start = false;
    }
    if (quote == 0 && c == '#') {  // a comment, to the end of the line
      while (i + 1 < code.size() && code[i + 1] != '\n') ++i;
      continue;
    }
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '(' || c == '[' || c == '{') {
      if (++brackets > worst.depth) worst = {brackets, line};
    } else if ((c == ')' || c == ']' || c == '}') && brackets > 0) {
      --brackets;
    }
  }
  return worst;
}

bool is_code(const std::string& name) {
  return name.rfind("code/", 0) == 0 && name.size() > 3 &&
         name.compare(name.size() - 3, 3, ".py") == 0;
}

void check_code(const std::string& name, std::string_view code) {
  const Nesting n = deepest(code);
  if (n.depth > kMaxCodeNesting) {
    throw std::runtime_error(fmt::format(
        "its code ({}) nests {} levels deep at line {}; stitch reads TorchScript code nested "
        "at most {} deep (LibTorch's parser would overflow its stack)",
        name, n.depth, n.line, kMaxCodeNesting));
  }
}

}  // namespace

void check_torchscript_archive(std::string_view bytes) {
  std::optional<detail::ZipArchive> zip;
  try {
    zip.emplace(bytes);
  } catch (const std::runtime_error&) {
    return;  // LibTorch says what it makes of it
  }
  const uint64_t bound = kMaxInflation * static_cast<uint64_t>(bytes.size()) + kInflationSlack;
  uint64_t declared = 0;
  for (const auto& [name, entry] : zip->deflated()) {
    declared += std::min(entry.size, bound + 1);  // saturates above the bound: never wraps
    if (declared > bound) {
      throw std::runtime_error(fmt::format(
          "its compressed entries declare more than {} bytes, more than {} times the file's {} "
          "bytes could hold: the archive is corrupt or crafted",
          bound, kMaxInflation, bytes.size()));
    }
  }
  for (const auto& [name, code] : zip->stored()) {
    if (is_code(name)) check_code(name, code);
  }
  for (const auto& [name, entry] : zip->deflated()) {
    if (is_code(name)) check_code(name, zip->inflate(entry));
  }
}

}  // namespace stitch
