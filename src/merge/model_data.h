#pragma once
// Data a merge runs a model on (greedy soups' scores, BatchNorm statistics):
// a tensor file holding one tensor per argument of forward, named as the
// argument, and for scoring int64 `labels`.

#include <torch/script.h>

#include <filesystem>
#include <vector>

namespace stitch {

struct ModelData {
  std::vector<torch::Tensor> inputs;  // one per argument of forward, in order
  torch::Tensor labels;               // undefined unless asked for
  int64_t rows = 0;

  /// Rows [start, start + count) of every input, as forward's arguments.
  std::vector<c10::IValue> batch(int64_t start, int64_t count) const;
};

/// Reads `file` for `module`'s forward: a model with one argument takes any
/// one tensor other than `labels`. Throws IoError naming the file and what
/// is missing (listing the file's keys), or rows that do not agree.
ModelData read_model_data(const torch::jit::Module& module, const std::filesystem::path& file,
                          bool with_labels);

}  // namespace stitch
