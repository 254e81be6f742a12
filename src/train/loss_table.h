#pragma once
// The losses `train.loss` can name. A loss is one row: its name, how many
// tensors it takes, its keyword options with their defaults, how it is
// computed, and how many samples it gets right (for accuracy).

#include <torch/script.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stitch::train_detail {

using LossOptions = std::map<std::string, double>;

struct LossDef {
  std::string name;
  size_t arity;         // tensors it takes: outputs and targets from data
  LossOptions options;  // keyword options and their defaults
  torch::Tensor (*compute)(const std::vector<torch::Tensor>& xs, const LossOptions& options);
  /// The samples of a batch it gets right; nullptr: no accuracy to report.
  std::optional<int64_t> (*correct)(const std::vector<torch::Tensor>& xs) = nullptr;
  /// Its integer targets (the second tensor) are class indices, fed as int64.
  bool class_targets = false;
  /// The tensor (index) a frozen teacher gives: a graph output of it may
  /// depend only on frozen models (kd's teacher logits); -1: none.
  int teacher = -1;
};

/// nullptr for an unknown loss.
const LossDef* find_loss(const std::string& name);
/// Every loss name, in the table's order.
std::vector<std::string> loss_names();

}  // namespace stitch::train_detail
