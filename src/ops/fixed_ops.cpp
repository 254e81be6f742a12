// Fixed ops: normalize (mean and std as buffers), relu, gelu, sigmoid, tanh,
// softmax, dropout and l2norm. No trained weights.

#include <fmt/format.h>

#include "ops/op_def.h"

namespace stitch {

namespace {

using K = ParamDef::Kind;

ValueType normalize(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  c.need_float(t, 0);
  const auto& mean = c.kw("mean").items;
  const auto& std = c.kw("std").items;
  if (t.shape.size() < 2) c.fail("normalize needs [N, C, ...]");
  const int64_t channels = c.static_dim(t, 1, "channel count (dim 1)");
  if (static_cast<int64_t>(mean.size()) != channels ||
      static_cast<int64_t>(std.size()) != channels) {
    c.fail(fmt::format("normalize: {} has {} channels, but mean has {} and std {} values", c.arg(0),
                       channels, mean.size(), std.size()));
  }
  for (const auto& s : std) {
    if (s.number() == 0.0) c.fail("normalize: std values must not be 0");
  }
  return t;
}

ValueType same_type(const ShapeCall& c) {
  return c.tensor(0);
}

/// softmax, l2norm: a float tensor and a dim in range.
ValueType float_along_dim(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  c.need_float(t, 0);
  c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  return t;
}

ValueType dropout(const ShapeCall& c) {
  const double p = c.number("p");
  if (p < 0.0 || p > 1.0) c.fail(fmt::format("dropout: p={} must be in [0, 1]", p));
  return float_tensor(c);
}

torch::jit::Module normalize_module(const LowerCall& c, LayerContext& ctx) {
  auto m = new_module(ctx.cu, "Normalize");
  std::vector<int64_t> view(c.rank(), 1);
  view[1] = c.input.shape[1].size();
  std::vector<double> mean, std;
  for (const auto& v : c.kw("mean").items) mean.push_back(v.number());
  for (const auto& v : c.kw("std").items) std.push_back(v.number());
  m.register_buffer("mean", torch::tensor(mean, torch::kFloat).view(view));
  m.register_buffer("std", torch::tensor(std, torch::kFloat).view(view));
  m.define(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "  return (x - self.mean) / self.std\n");
  return m;
}

/// relu, gelu, sigmoid, tanh: torch.<op>(x).
std::string lower_activation(const LowerCall& c) {
  return fmt::format("torch.{}({})", c.node.op, c.x());
}
std::string lower_softmax(const LowerCall& c) {
  return fmt::format("torch.softmax({}, {})", c.x(), c.kw("dim").i);
}
std::string lower_dropout(const LowerCall& c) {
  return fmt::format("torch.dropout({}, {}, self.training)", c.x(), float_text(c.kw("p")));
}
std::string lower_l2norm(const LowerCall& c) {
  return fmt::format("{} / torch.clamp_min(torch.linalg_vector_norm({}, 2.0, [{}], True), 1e-12)",
                     c.x(), c.x(), c.kw("dim").i);
}

}  // namespace

std::vector<OpDef> fixed_ops() {
  const ParamDef x = required("x", K::Tensor);
  return {
      {{"normalize", "fixed", {x, required("mean", K::FloatList), required("std", K::FloatList)}},
       normalize,
       nullptr,
       normalize_module},
      {{"relu", "fixed", {x}}, same_type, lower_activation},
      {{"gelu", "fixed", {x}}, float_tensor, lower_activation},
      {{"sigmoid", "fixed", {x}}, float_tensor, lower_activation},
      {{"tanh", "fixed", {x}}, float_tensor, lower_activation},
      {{"softmax", "fixed", {x, required("dim", K::Int)}}, float_along_dim, lower_softmax},
      {{"dropout", "fixed", {x, required("p", K::Float)}}, dropout, lower_dropout, nullptr, true},
      {{"l2norm", "fixed", {x, optional("dim", K::Int, 1)}}, float_along_dim, lower_l2norm},
  };
}

}  // namespace stitch
