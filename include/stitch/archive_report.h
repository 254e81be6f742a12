#pragma once
// What a TorchScript file holds, read from its zip entries without running
// any of its code: `stitch inspect --archive`, the way to look at a file
// you do not trust (docs/reliability.md).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stitch {

struct ArchiveReport {
  struct CodeFile {
    std::string name;  // "code/__torch__/torchvision/models/resnet.py"
    int64_t lines = 0;
    std::vector<std::string> outline;  // "class ResNet", "  def forward", ...
    /// The first file operator it calls, "torch.from_file, line 8".
    std::optional<std::string> file_operator;
  };
  std::string file;
  std::string version;  // the archive's `version` entry
  std::vector<CodeFile> code;
  int64_t tensors = 0;  // tensor entries (data/)
  int64_t tensor_bytes = 0;
  bool artifact = false;  // holds stitch's manifest
  std::string problem;    // why it could not be read (or would be refused)

  /// As `stitch inspect --archive` prints it.
  std::string table() const;
  /// The same as JSON.
  std::string json() const;
};

/// Reads `file` as a zip archive, never as a model: no code in it runs.
/// Throws IoError when it cannot be read; a file that is not a TorchScript
/// archive gets ArchiveReport::problem.
///   std::cout << stitch::inspect_archive("untrusted.pt").table();
[[nodiscard]] ArchiveReport inspect_archive(const std::string& file);

}  // namespace stitch
