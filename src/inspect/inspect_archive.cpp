#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/value_json.h"
#include "load/archive_check.h"
#include "stitch/archive_report.h"
#include "util/atomic_file.h"

namespace stitch {

namespace {

std::string size_text(int64_t bytes) {
  if (bytes < 10'000) return fmt::format("{} bytes", bytes);
  if (bytes < 10'000'000) return fmt::format("{:.1f} kB", bytes / 1e3);
  return fmt::format("{:.1f} MB", bytes / 1e6);
}

}  // namespace

ArchiveReport inspect_archive(const std::string& file) {
  ArchiveReport report = read_archive_contents(read_file(file));
  report.file = file;
  return report;
}

std::string ArchiveReport::table() const {
  std::string out = fmt::format("{}: ", file);
  if (code.empty() && !problem.empty()) return out + "not a TorchScript archive: " + problem + "\n";
  out += fmt::format("TorchScript archive{}, {}; read without running any of its code\n",
                     version.empty() ? "" : ", version " + version,
                     artifact ? "a stitch artifact" : "not a stitch artifact");
  int64_t lines = 0;
  for (const auto& c : code) lines += c.lines;
  out +=
      fmt::format("code: {} file{}, {} lines\n", code.size(), code.size() == 1 ? "" : "s", lines);
  for (const auto& c : code) {
    out += fmt::format("  {}  ({} lines)\n", c.name, c.lines);
    for (const auto& entry : c.outline) out += "    " + entry + "\n";
    if (c.file_operator) {
      out += fmt::format("    ! calls {}: reads or writes files (stitch refuses to load it)\n",
                         *c.file_operator);
    }
  }
  out += fmt::format("tensors: {} ({})\n", tensors, size_text(tensor_bytes));
  if (!problem.empty()) out += "problem: " + problem + "\n";
  return out;
}

std::string ArchiveReport::json() const {
  nlohmann::json j;
  j["file"] = file;
  j["version"] = version;
  j["artifact"] = artifact;
  j["code"] = nlohmann::json::array();
  for (const auto& c : code) {
    j["code"].push_back({{"name", c.name},
                         {"lines", c.lines},
                         {"outline", c.outline},
                         {"file_operator", c.file_operator ? nlohmann::json(*c.file_operator)
                                                           : nlohmann::json(nullptr)}});
  }
  j["tensors"] = tensors;
  j["tensor_bytes"] = tensor_bytes;
  j["problem"] = problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(problem);
  return detail::dump_json(j);
}

}  // namespace stitch
