#pragma once
// Weight-space merging of models of one architecture (docs/merge.md): the
// state check and the per-tensor formulas of linear, slerp,
// task_arithmetic, ties and dare. Files, manifests, greedy soups and
// BatchNorm statistics on data are the merge stage's (src/merge/).

#include <torch/script.h>

#include <optional>
#include <string>
#include <vector>

#include "stitch/merge_options.h"

namespace stitch {

/// A model to merge and the name messages give it (its file name).
struct MergeSource {
  torch::jit::Module module;
  std::string label;
};

/// What a merge did, for the line `stitch merge` prints.
struct MergeSummary {
  int64_t models = 0;
  int64_t parameters = 0;     // floating-point parameters merged by the method
  int64_t values = 0;         // their elements
  int64_t float_buffers = 0;  // averaged
  int64_t kept = 0;           // integer and boolean tensors, kept from the first model
  /// "merged 2 models by linear: 62 parameters (11.7M values), ..."
  std::string str(MergeMethod method, const std::string& first) const;
};

/// Throws ModelError "cannot merge B into A: ..." at the first parameter or
/// buffer whose name, shape or dtype differs between `models[0]` and any of
/// the others or `base`.
void check_same_state(const std::vector<MergeSource>& models, const MergeSource* base);

/// Where the merge is written: a deep copy of models[0], or models[0] itself
/// (one model's memory less, for a caller that does not use it again).
enum class MergeInto { copy, first };

/// The merge: models[0] (or a copy) with its floating-point parameters
/// merged by options.method(), floating-point buffers averaged, and
/// integer buffers kept. Checks the states first (check_same_state) and
/// the options (MergeOptions::validate); `base` is required by the
/// task-vector methods.
[[nodiscard]] torch::jit::Module merge_weights(const std::vector<MergeSource>& models,
                                               const MergeSource* base, const MergeOptions& options,
                                               MergeSummary* summary = nullptr,
                                               MergeInto into = MergeInto::copy);

}  // namespace stitch
