// The loss rows: cross_entropy, mse, bce, clip, contrastive and kd.

#include "train/loss_table.h"

namespace stitch::train_detail {

namespace {

/// Cosine similarities scaled by 1/temperature: row i, column j compares
/// a[i] with b[j].
torch::Tensor similarity(const torch::Tensor& a, const torch::Tensor& b, double temperature) {
  auto unit = [](const torch::Tensor& x) {
    return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
  };
  return at::matmul(unit(a), unit(b).t()) / temperature;
}

torch::Tensor cross_entropy(const std::vector<torch::Tensor>& xs, const LossOptions&) {
  return at::cross_entropy_loss(xs[0], xs[1]);
}

std::optional<int64_t> argmax_correct(const std::vector<torch::Tensor>& xs) {
  if (xs[1].dim() != 1) return std::nullopt;  // soft targets: no accuracy
  return xs[0].argmax(1).eq(xs[1]).sum().item<int64_t>();
}

torch::Tensor mse(const std::vector<torch::Tensor>& xs, const LossOptions&) {
  TORCH_CHECK(xs[0].sizes() == xs[1].sizes(), "mse needs two tensors of the same shape, got ",
              xs[0].sizes(), " and ", xs[1].sizes());
  return at::mse_loss(xs[0], xs[1]);
}

torch::Tensor bce(const std::vector<torch::Tensor>& xs, const LossOptions&) {
  TORCH_CHECK(xs[0].sizes() == xs[1].sizes(),
              "bce needs logits and targets of the same shape, got ", xs[0].sizes(), " and ",
              xs[1].sizes());
  return at::binary_cross_entropy_with_logits(xs[0], xs[1]);
}

/// Every output unit is one decision; a sample is right when all of its are.
std::optional<int64_t> bce_correct(const std::vector<torch::Tensor>& xs) {
  auto right = xs[0].gt(0).eq(xs[1].gt(0.5));
  if (right.dim() > 1) right = right.flatten(1).all(1);
  return right.sum().item<int64_t>();
}

/// Symmetric InfoNCE (CLIP): a[i] must pick b[i] among the batch, and b[i]
/// must pick a[i].
torch::Tensor clip(const std::vector<torch::Tensor>& xs, const LossOptions& options) {
  const auto& a = xs[0];
  const auto& b = xs[1];
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.sizes() == b.sizes(),
              "clip needs two [N, D] embeddings of the same shape, got ", a.sizes(), " and ",
              b.sizes());
  auto logits = similarity(a, b, options.at("temperature"));
  auto labels = torch::arange(a.size(0), torch::kLong);
  return (at::cross_entropy_loss(logits, labels) + at::cross_entropy_loss(logits.t(), labels)) / 2;
}

/// Retrieval: a[i] picks b[i] among the batch.
std::optional<int64_t> clip_correct(const std::vector<torch::Tensor>& xs) {
  auto picked = similarity(xs[0], xs[1], 1.0).argmax(1);
  return picked.eq(torch::arange(xs[0].size(0), torch::kLong)).sum().item<int64_t>();
}

/// Seed 002's pairwise margin loss, as the seed computes it: squared
/// distances between every a[i] and b[j] ([N, N]), the labels broadcast
/// against them as PyTorch broadcasts (labels [N]: label j for column j;
/// [N, N]: one per pair), `margin` in place of the seed's 1.
torch::Tensor contrastive(const std::vector<torch::Tensor>& xs, const LossOptions& options) {
  const auto& a = xs[0];
  const auto& b = xs[1];
  TORCH_CHECK(a.dim() == 2 && a.sizes() == b.sizes(),
              "contrastive needs two [N, D] embeddings of the same shape, got ", a.sizes(), " and ",
              b.sizes());
  const int64_t n = a.size(0);
  const auto y = xs[2].to(a.scalar_type());
  TORCH_CHECK((y.dim() == 1 && y.size(0) == n) ||
                  (y.dim() == 2 && y.size(0) == n && (y.size(1) == n || y.size(1) == 1)),
              "contrastive labels must be [N], [N, 1] or [N, N] for N = ", n, ", got ", y.sizes());
  const double margin = options.at("margin");
  const auto distances = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(2);
  auto loss = y * distances + (1 - y) * torch::clamp_min(margin - distances, 0.0);
  return loss.mean();
}

/// Distillation (Hinton et al., 2015): KL(teacher || student) on outputs
/// softened by the temperature, times T^2 so that the gradients keep their
/// scale; F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1),
/// reduction="batchmean") * T * T. The teacher's logits never get a gradient.
torch::Tensor kd(const std::vector<torch::Tensor>& xs, const LossOptions& options) {
  const auto& student = xs[0];
  const auto teacher = xs[1].detach().to(student.scalar_type());
  TORCH_CHECK(student.dim() == 2 && student.sizes() == teacher.sizes(),
              "kd needs student and teacher logits of the same [N, classes] shape, got ",
              student.sizes(), " and ", teacher.sizes());
  const double t = options.at("temperature");
  TORCH_CHECK(t > 0, "kd's temperature must be > 0, got ", t);
  const auto log_student = at::log_softmax(student / t, 1);
  const auto soft_teacher = at::softmax(teacher / t, 1);
  return at::kl_div(log_student, soft_teacher, at::Reduction::Sum) / student.size(0) * (t * t);
}

const std::vector<LossDef>& table() {
  static const std::vector<LossDef> kTable = {
      {"cross_entropy", 2, {}, cross_entropy, argmax_correct, /*class_targets=*/true},
      {"mse", 2, {}, mse},
      {"bce", 2, {}, bce, bce_correct},
      {"clip", 2, {{"temperature", 0.07}}, clip, clip_correct},
      {"contrastive", 3, {{"margin", 1.0}}, contrastive},
      {"kd", 2, {{"temperature", 2.0}}, kd, nullptr, false, /*teacher=*/1},
  };
  return kTable;
}

}  // namespace

const LossDef* find_loss(const std::string& name) {
  for (const auto& loss : table()) {
    if (loss.name == name) return &loss;
  }
  return nullptr;
}

std::vector<std::string> loss_names() {
  std::vector<std::string> names;
  for (const auto& loss : table()) names.push_back(loss.name);
  return names;
}

}  // namespace stitch::train_detail
