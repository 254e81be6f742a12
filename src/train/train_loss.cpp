// Losses of `train.loss` and the accuracy that goes with them.

#include <fmt/format.h>

#include "core/assert.h"
#include "train/loss_table.h"
#include "train/train_internal.h"

namespace stitch::train_detail {

namespace {

const torch::Tensor& get(const Named& values, const std::string& name) {
  auto it = values.find(name);
  if (it == values.end()) throw Error("loss: no value named '" + name + "'");
  return it->second;
}

std::string describe(const LossTerm& t) {
  std::string args;
  for (const auto& a : t.args) args += (args.empty() ? "" : ", ") + a;
  return fmt::format("{}({})", t.fn, args);
}

/// The term's tensors, in its loss's order.
std::vector<torch::Tensor> term_values(const LossTerm& t, const Named& values) {
  std::vector<torch::Tensor> xs;
  for (const auto& name : t.args) xs.push_back(get(values, name));
  return xs;
}

const LossDef& loss_of(const LossTerm& t) {
  const LossDef* loss = find_loss(t.fn);
  STITCH_INTERNAL_ASSERT(loss != nullptr, "unknown loss {} (the parser refuses it)", t.fn);
  return *loss;
}

}  // namespace

torch::Tensor compute_loss(const std::vector<LossTerm>& terms, const Named& values) {
  torch::Tensor total;
  for (const auto& t : terms) {
    auto loss = with_context("loss " + describe(t),
                             [&] { return loss_of(t).compute(term_values(t, values), t.options); });
    loss = t.weight == 1.0 ? loss : loss * t.weight;
    total = total.defined() ? total + loss : loss;
  }
  return total;
}

std::optional<int64_t> count_correct(const std::vector<LossTerm>& terms, const Named& values) {
  torch::NoGradGuard no_grad;
  for (const auto& t : terms) {
    const LossDef& loss = loss_of(t);
    if (loss.correct == nullptr) continue;
    if (auto right = loss.correct(term_values(t, values))) return right;
  }
  return std::nullopt;
}

at::ScalarType target_dtype(const std::vector<LossTerm>& terms, const std::string& name,
                            const torch::Tensor& data) {
  for (const auto& t : terms) {
    if (loss_of(t).class_targets && t.args[1] == name && !data.is_floating_point()) {
      return torch::kLong;  // class indices
    }
  }
  return torch::kFloat;
}

}  // namespace stitch::train_detail
