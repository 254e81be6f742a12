// Losses of `train.loss` and the accuracy that goes with them.

#include <fmt/format.h>

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

/// Cosine similarities scaled by 1/temperature: row i, column j compares
/// a[i] with b[j].
torch::Tensor similarity(const torch::Tensor& a, const torch::Tensor& b, double temperature) {
  auto unit = [](const torch::Tensor& x) {
    return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
  };
  return at::matmul(unit(a), unit(b).t()) / temperature;
}

/// Symmetric InfoNCE (CLIP): a[i] must pick b[i] among the batch, and b[i]
/// must pick a[i].
torch::Tensor clip_loss(const torch::Tensor& a, const torch::Tensor& b, double temperature) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.sizes() == b.sizes(),
              "clip needs two [N, D] embeddings of the same shape, got ", a.sizes(), " and ",
              b.sizes());
  auto logits = similarity(a, b, temperature);
  auto labels = torch::arange(a.size(0), torch::kLong);
  return (at::cross_entropy_loss(logits, labels) + at::cross_entropy_loss(logits.t(), labels)) / 2;
}

/// Seed 002's pairwise margin loss, as the seed computes it: squared
/// distances between every a[i] and b[j] ([N, N]), the labels broadcast
/// against them as PyTorch broadcasts (labels [N]: label j for column j;
/// [N, N]: one per pair), `margin` in place of the seed's 1.
torch::Tensor contrastive_loss(const torch::Tensor& a, const torch::Tensor& b,
                               const torch::Tensor& labels, double margin) {
  TORCH_CHECK(a.dim() == 2 && a.sizes() == b.sizes(),
              "contrastive needs two [N, D] embeddings of the same shape, got ", a.sizes(), " and ",
              b.sizes());
  const int64_t n = a.size(0);
  const auto y = labels.to(a.scalar_type());
  TORCH_CHECK((y.dim() == 1 && y.size(0) == n) || (y.dim() == 2 && y.size(0) == n &&
                                                   (y.size(1) == n || y.size(1) == 1)),
              "contrastive labels must be [N], [N, 1] or [N, N] for N = ", n, ", got ",
              y.sizes());
  const auto distances = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(2);
  auto loss = y * distances + (1 - y) * torch::clamp_min(margin - distances, 0.0);
  return loss.mean();
}

torch::Tensor term_loss(const LossTerm& t, const Named& values) {
  const auto& a = get(values, t.args[0]);
  const auto& b = get(values, t.args[1]);
  if (t.fn == "cross_entropy") return at::cross_entropy_loss(a, b);
  if (t.fn == "mse") {
    TORCH_CHECK(a.sizes() == b.sizes(), "mse needs two tensors of the same shape, got ", a.sizes(),
                " and ", b.sizes());
    return at::mse_loss(a, b);
  }
  if (t.fn == "bce") {
    TORCH_CHECK(a.sizes() == b.sizes(), "bce needs logits and targets of the same shape, got ",
                a.sizes(), " and ", b.sizes());
    return at::binary_cross_entropy_with_logits(a, b);
  }
  if (t.fn == "clip") return clip_loss(a, b, t.options.at("temperature"));
  if (t.fn == "contrastive") {
    return contrastive_loss(a, b, get(values, t.args[2]), t.options.at("margin"));
  }
  throw Error("unknown loss " + t.fn);
}

}  // namespace

torch::Tensor compute_loss(const std::vector<LossTerm>& terms, const Named& values) {
  torch::Tensor total;
  for (const auto& t : terms) {
    auto loss = with_context("loss " + describe(t), [&] { return term_loss(t, values); });
    loss = t.weight == 1.0 ? loss : loss * t.weight;
    total = total.defined() ? total + loss : loss;
  }
  return total;
}

std::optional<int64_t> count_correct(const std::vector<LossTerm>& terms, const Named& values) {
  torch::NoGradGuard no_grad;
  for (const auto& t : terms) {
    const auto& a = get(values, t.args[0]);
    const auto& b = get(values, t.args[1]);
    if (t.fn == "cross_entropy" && b.dim() == 1) {
      return a.argmax(1).eq(b).sum().item<int64_t>();
    }
    if (t.fn == "bce") {
      // Every output unit is one decision; count the samples with all right.
      auto right = a.gt(0).eq(b.gt(0.5));
      if (right.dim() > 1) right = right.flatten(1).all(1);
      return right.sum().item<int64_t>();
    }
    if (t.fn == "clip") {
      auto picked = similarity(a, b, 1.0).argmax(1);
      return picked.eq(torch::arange(a.size(0), torch::kLong)).sum().item<int64_t>();
    }
  }
  return std::nullopt;
}

at::ScalarType target_dtype(const std::vector<LossTerm>& terms, const std::string& name,
                            const torch::Tensor& data) {
  for (const auto& t : terms) {
    if (t.fn == "cross_entropy" && t.args[1] == name && !data.is_floating_point()) {
      return torch::kLong;  // class indices
    }
  }
  (void)data;
  return torch::kFloat;
}

}  // namespace stitch::train_detail
