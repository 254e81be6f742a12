#include "load/archive_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <utility>

#include "core/artifact_names.h"
#include "stitch/runtime.h"
#include "util/zip_reader.h"

namespace stitch {

namespace {

/// What one pass over TorchScript code finds.
struct CodeScan {
  int depth = 0;  // the deepest nesting: open brackets, or indentation levels
  int depth_line = 0;
  std::optional<std::string> file_call;  // "torch.save, line 8"
};

bool starts_name(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool in_name(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

/// Whether a call of `parts` ("torch", "from_file") reads or writes files:
/// aten::from_file and aten::save, and torchvision.io's operators.
bool is_file_operator(const std::vector<std::string_view>& parts) {
  const std::string_view last = parts.back();
  if (last == "from_file" || last == "read_file" || last == "write_file" || last == "write_png" ||
      last == "write_jpeg") {
    return parts.front() != "self";  // a method of the model's own
  }
  if (last == "save" && parts.size() >= 2) {
    const std::string_view owner = parts[parts.size() - 2];
    return owner == "torch" || owner == "aten";
  }
  return false;
}

/// A lexer of just enough Python: string literals (triple-quoted too) and
/// comments are skipped, dotted names followed by '(' are calls (not after
/// `def`), indentation (2 spaces a level, as torch.jit.save writes) and
/// brackets nest.
CodeScan scan(std::string_view code) {
  CodeScan found;
  int brackets = 0, line = 1, indent = 0;
  bool line_start = true, after_def = false;
  auto deeper = [&](int depth) {
    if (depth > found.depth) found.depth = depth, found.depth_line = line;
  };
  size_t i = 0;
  const size_t n = code.size();
  while (i < n) {
    const char c = code[i];
    if (c == '\n') {
      ++line, ++i;
      line_start = true;
      indent = 0;
      continue;
    }
    if (line_start) {
      if (c == ' ' || c == '\t') {
        indent += c == '\t' ? 8 : 1;
        deeper(indent / 2);
        ++i;
        continue;
      }
      line_start = false;
    }
    if (c == '#') {  // a comment, to the end of the line
      while (i < n && code[i] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {
      const bool triple = i + 2 < n && code[i + 1] == c && code[i + 2] == c;
      i += triple ? 3 : 1;
      while (i < n) {
        if (code[i] == '\\') {
          i += 2;
          continue;
        }
        if (code[i] == '\n') {
          ++line;
          if (!triple) break;  // unterminated: the parser says so
        }
        if (code[i] == c && (!triple || (i + 2 < n && code[i + 1] == c && code[i + 2] == c))) {
          i += triple ? 3 : 1;
          break;
        }
        ++i;
      }
      after_def = false;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {  // a number, 1e-5 included
      while (i < n && (in_name(code[i]) || code[i] == '.')) ++i;
      after_def = false;
      continue;
    }
    if (starts_name(c)) {
      std::vector<std::string_view> parts;
      while (true) {
        const size_t start = i;
        while (i < n && in_name(code[i])) ++i;
        parts.push_back(code.substr(start, i - start));
        size_t next = i;
        while (next < n && code[next] == ' ') ++next;
        if (next >= n || code[next] != '.') break;
        ++next;
        while (next < n && code[next] == ' ') ++next;
        if (next >= n || !starts_name(code[next])) break;
        i = next;
      }
      size_t next = i;
      while (next < n && code[next] == ' ') ++next;
      const bool call = next < n && code[next] == '(';
      if (call && !after_def && !found.file_call && is_file_operator(parts)) {
        std::string name;
        for (const auto& p : parts) name += (name.empty() ? "" : ".") + std::string(p);
        found.file_call = fmt::format("{}, line {}", name, line);
      }
      after_def = parts.size() == 1 && parts[0] == "def";
      continue;
    }
    if (c == '(' || c == '[' || c == '{') {
      deeper(++brackets);
    } else if ((c == ')' || c == ']' || c == '}') && brackets > 0) {
      --brackets;
    }
    if (c != ' ') after_def = false;
    ++i;
  }
  return found;
}

bool is_code(const std::string& name) {
  return name.rfind("code/", 0) == 0 && name.size() > 3 &&
         name.compare(name.size() - 3, 3, ".py") == 0;
}

void check_code(const std::string& name, std::string_view code) {
  const CodeScan found = scan(code);
  if (found.depth > kMaxCodeNesting) {
    throw std::runtime_error(fmt::format(
        "its code ({}) nests {} levels deep at line {}; stitch reads TorchScript code nested "
        "at most {} deep (LibTorch's parser would overflow its stack)",
        name, found.depth, found.depth_line, kMaxCodeNesting));
  }
  if (found.file_call && !file_operators_allowed()) {
    const std::string call = *found.file_call;
    const size_t comma = call.find(',');
    throw std::runtime_error(fmt::format(
        "its code ({}{}) calls {}, which reads or writes files; a TorchScript model is code "
        "that runs when it is loaded, and stitch refuses models that touch files\n"
        "  fix: if you trust this file and want it to touch files, set STITCH_ALLOW_FILE_OPS=1",
        name, call.substr(comma), call.substr(0, comma)));
  }
}

/// The archive's code files, inflated, in name order; throws when their
/// declared sizes are more than the file could hold.
std::vector<std::pair<std::string, std::string>> code_files(const detail::ZipArchive& zip,
                                                            size_t file_size) {
  const uint64_t bound = kMaxInflation * static_cast<uint64_t>(file_size) + kInflationSlack;
  uint64_t declared = 0;
  for (const auto& [name, entry] : zip.deflated()) {
    declared += std::min(entry.size, bound + 1);  // saturates above the bound: never wraps
    if (declared > bound) {
      throw std::runtime_error(fmt::format(
          "its compressed entries declare more than {} bytes, more than {} times the file's {} "
          "bytes could hold: the archive is corrupt or crafted",
          bound, kMaxInflation, file_size));
    }
  }
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& [name, code] : zip.stored()) {
    if (is_code(name)) files.emplace_back(name, std::string(code));
  }
  for (const auto& [name, entry] : zip.deflated()) {
    if (is_code(name)) files.emplace_back(name, zip.inflate(entry));
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// "class ResNet", "  def forward": the classes and functions of `code`,
/// indented by how they nest.
std::vector<std::string> outline_of(std::string_view code) {
  std::vector<std::string> outline;
  size_t start = 0;
  while (start < code.size()) {
    size_t end = code.find('\n', start);
    if (end == std::string_view::npos) end = code.size();
    const std::string_view text = code.substr(start, end - start);
    const size_t indent = text.find_first_not_of(' ');
    if (indent != std::string_view::npos) {
      const std::string_view rest = text.substr(indent);
      for (const std::string_view keyword : {"class ", "def "}) {
        if (rest.substr(0, keyword.size()) != keyword) continue;
        size_t name_end = keyword.size();
        while (name_end < rest.size() && in_name(rest[name_end])) ++name_end;
        outline.push_back(std::string(indent, ' ') + std::string(rest.substr(0, name_end)));
      }
    }
    start = end + 1;
  }
  return outline;
}

}  // namespace

std::optional<std::string> file_operator_call(std::string_view code) {
  return scan(code).file_call;
}

void check_torchscript_archive(std::string_view bytes) {
  std::optional<detail::ZipArchive> zip;
  try {
    zip.emplace(bytes);
  } catch (const std::runtime_error&) {
    return;  // LibTorch says what it makes of it
  }
  for (const auto& [name, code] : code_files(*zip, bytes.size())) check_code(name, code);
}

ArchiveReport read_archive_contents(std::string_view bytes) {
  ArchiveReport contents;
  try {
    const detail::ZipArchive zip(bytes);
    if (auto version = zip.find("version")) {
      contents.version = std::string(*version);
      while (!contents.version.empty() &&
             std::isspace(static_cast<unsigned char>(contents.version.back()))) {
        contents.version.pop_back();
      }
    }
    for (const auto& [name, data] : zip.stored()) {
      if (name.rfind("data/", 0) != 0) continue;
      ++contents.tensors;
      contents.tensor_bytes += static_cast<int64_t>(data.size());
    }
    contents.artifact = zip.has(std::string("extra/") + kManifestFile);
    for (const auto& [name, code] : code_files(zip, bytes.size())) {
      ArchiveReport::CodeFile file;
      file.name = name;
      file.lines = static_cast<int64_t>(std::count(code.begin(), code.end(), '\n'));
      file.outline = outline_of(code);
      const CodeScan found = scan(code);
      file.file_operator = found.file_call;
      if (found.depth > kMaxCodeNesting) {
        contents.problem =
            fmt::format("{} nests {} levels deep at line {}", name, found.depth, found.depth_line);
      }
      contents.code.push_back(std::move(file));
    }
  } catch (const std::bad_alloc&) {
    contents.problem = "out of memory while reading its code";
  } catch (const std::exception& e) {
    contents.problem = e.what();
  }
  return contents;
}

}  // namespace stitch
