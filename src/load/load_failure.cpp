#include "load/load_failure.h"

#include <fmt/format.h>
#include <torch/version.h>

#include <optional>
#include <regex>

#include "stitch/compat.h"
#include "util/zip_reader.h"

namespace stitch {

namespace {

constexpr const char* kScriptFix =
    "  fix: in Python, script or trace the module and save that: "
    "torch.jit.script(model).save(\"model.pt\") (or torch.jit.trace(model, example))";

std::string compat_list() {
  std::string out;
  for (const auto& op : compat_operators()) out += (out.empty() ? "" : ", ") + op;
  return out.empty() ? "none" : out;
}

}  // namespace

std::optional<std::string> not_torchscript(const std::filesystem::path& file,
                                           std::string_view bytes) {
  const std::string name = file.string();
  if (bytes.substr(0, 4) == std::string_view("PK\x03\x04", 4)) {
    try {
      const detail::ZipArchive zip(bytes);
      if (zip.has("serialized_exported_program.json") || zip.has("archive_format")) {
        return fmt::format(
            "cannot load {}: it is a torch.export program (.pt2), which TorchScript cannot "
            "run\n{}\n  or: load its weights into a scripted architecture: "
            "m = Arch(); m.load_state_dict(sd); torch.jit.script(m).save(\"model.pt\")",
            name, kScriptFix);
      }
      if (zip.has("data.pkl") && !zip.has("constants.pkl")) {
        return fmt::format(
            "cannot load {}: it is a torch.save file (a state_dict or a pickled module), "
            "not a TorchScript archive\n"
            "  fix: in Python, load it into its architecture and script that: m = Arch(); "
            "m.load_state_dict(torch.load(\"{}\")); torch.jit.script(m).save(\"model.pt\")",
            name, file.filename().string());
      }
    } catch (const std::exception&) {
      // A zip stitch cannot read: truncated or corrupt, said below.
    }
    return std::nullopt;
  }
  if (!bytes.empty() && static_cast<unsigned char>(bytes[0]) == 0x80) {
    return fmt::format(
        "cannot load {}: it is a pickle (torch.save with _use_new_zipfile_serialization=False, "
        "or pickle.dump), not a TorchScript archive\n{}",
        name, kScriptFix);
  }
  const auto head = bytes.substr(0, 512);
  const bool text = !head.empty() && std::all_of(head.begin(), head.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 || c == '\n' || c == '\r' || c == '\t';
  });
  if (text) {
    return fmt::format("cannot load {}: it is a text file, not a TorchScript archive\n{}", name,
                       kScriptFix);
  }
  return std::nullopt;
}

std::string load_failure(const std::filesystem::path& file, std::string_view bytes,
                         const std::string& why, bool in_code) {
  if (auto what = not_torchscript(file, bytes)) return *what;
  std::smatch m;
  static const std::regex kUnknownOp(R"(Unknown builtin op: ([\w:]+(?:\.\w+)?))");
  if (std::regex_search(why, m, kUnknownOp)) {
    return fmt::format(
        "cannot load {}: it calls the operator {}, which LibTorch {} does not have and "
        "stitch does not add (stitch adds: {})\n"
        "  fix: re-script the model in Python without that operator, or build stitch on a "
        "newer LibTorch (docs/compatibility.md lists what each LibTorch needs)",
        file.string(), m[1].str(), TORCH_VERSION, compat_list());
  }
  if (why.find("zip archive") != std::string::npos ||
      why.find("PytorchStreamReader") != std::string::npos ||
      why.find("inline_container") != std::string::npos) {
    return fmt::format("cannot load {}: not a TorchScript archive, or truncated or corrupt\n{}",
                       file.string(), kScriptFix);
  }
  if (in_code) {
    return fmt::format(
        "cannot load {}: its TorchScript code does not compile on LibTorch {} ({})\n"
        "  fix: re-export it with torch.jit.script or torch.jit.trace; if a newer PyTorch saved "
        "it, docs/compatibility.md says what stitch on this LibTorch takes",
        file.string(), TORCH_VERSION, why);
  }
  return fmt::format(
      "cannot load {}: the archive is damaged or was not written by torch.jit.save "
      "(LibTorch: {})\n{}",
      file.string(), why, kScriptFix);
}

}  // namespace stitch
