#include "build/layers.h"

#include <fmt/format.h>

#include <cmath>

namespace stitch {

namespace {

}  // namespace

torch::jit::Module new_module(const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                              const std::string& type) {
  torch::jit::Module m(c10::QualifiedName("__torch__.stitch." + type), cu,
                       /*shouldMangle=*/true);
  // Modules made in Python have `training`; ones made in C++ need it for
  // self.training in dropout and batchnorm, and for train()/eval().
  m.register_attribute("training", c10::BoolType::get(), true);
  return m;
}

namespace {

torch::jit::Module new_layer(LayerContext& ctx, const std::string& type) {
  return new_module(ctx.cu, type);
}

torch::Tensor trainable(torch::Tensor t) { return t.set_requires_grad(true); }

torch::Tensor uniform(LayerContext& ctx, std::vector<int64_t> sizes, double bound) {
  return torch::empty(sizes).uniform_(-bound, bound, ctx.generator);
}

/// nn.Linear / nn.ConvNd's default init: kaiming_uniform(a=sqrt(5)), which is
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for the weight and for the bias.
void add_weight_and_bias(torch::jit::Module& m, LayerContext& ctx,
                         std::vector<int64_t> weight_sizes, int64_t fan_in, bool bias) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
  m.register_parameter("weight", trainable(uniform(ctx, weight_sizes, bound)), false);
  if (bias) {
    m.register_parameter("bias", trainable(uniform(ctx, {weight_sizes[0]}, bound)), false);
  }
}

torch::jit::Module linear_layer(LayerContext& ctx, int64_t in, int64_t out, bool bias) {
  auto m = new_layer(ctx, "Linear");
  add_weight_and_bias(m, ctx, {out, in}, in, bias);
  m.define(fmt::format(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "  return torch.linear(x, self.weight, {})\n",
      bias ? "self.bias" : "None"));
  return m;
}

std::string activation(const std::string& act, const std::string& x) {
  if (act == "none") return x;
  return fmt::format("torch.{}({})", act, x);
}

}  // namespace

std::optional<torch::jit::Module> make_layer(const Node& node, const ValueType& input,
                                             LayerContext& ctx) {
  const auto& op = node.op;
  auto kw = [&](const char* key) -> const Literal& { return *node.kwarg(key); };
  const int64_t rank = static_cast<int64_t>(input.shape.size());
  if (op == "linear") {
    return linear_layer(ctx, input.shape.back().size(), kw("out").i, kw("bias").b);
  }
  if (op == "conv") {
    const int64_t in = input.shape[1].size(), out = kw("out").i, k = kw("kernel").i;
    const int64_t spatial = rank - 2;
    auto m = new_layer(ctx, fmt::format("Conv{}d", spatial));
    std::vector<int64_t> sizes = {out, in};
    for (int64_t d = 0; d < spatial; ++d) sizes.push_back(k);
    add_weight_and_bias(m, ctx, sizes, in * static_cast<int64_t>(std::pow(k, spatial)), true);
    std::string s = std::to_string(kw("stride").i), p = std::to_string(kw("padding").i);
    m.define(fmt::format(
        "def forward(self, x: Tensor) -> Tensor:\n"
        "  return torch.conv{}d(x, self.weight, self.bias, [{}], [{}])\n",
        spatial, spatial == 2 ? s + ", " + s : s, spatial == 2 ? p + ", " + p : p));
    return m;
  }
  if (op == "mlp") {
    auto m = new_layer(ctx, "MLP");
    int64_t in = input.shape.back().size();
    const auto& sizes = kw("sizes").items;
    const double p = kw("dropout").number();
    std::string body = "def forward(self, x: Tensor) -> Tensor:\n";
    for (size_t i = 0; i < sizes.size(); ++i) {
      m.register_module("fc" + std::to_string(i),
                        linear_layer(ctx, in, sizes[i].i, true));
      in = sizes[i].i;
      body += fmt::format("  x = self.fc{}.forward(x)\n", i);
      if (i + 1 < sizes.size()) {
        body += "  x = " + activation(kw("act").s, "x") + "\n";
        if (p > 0) body += fmt::format("  x = torch.dropout(x, {}, self.training)\n", p);
      }
    }
    m.define(body + "  return x\n");
    return m;
  }
  if (op == "embedding") {
    auto m = new_layer(ctx, "Embedding");
    m.register_parameter("weight",
                         trainable(torch::empty({kw("vocab").i, kw("dim").i}).normal_(0, 1, ctx.generator)),
                         false);
    m.define(
        "def forward(self, x: Tensor) -> Tensor:\n"
        "  return torch.embedding(self.weight, x)\n");
    return m;
  }
  if (op == "layernorm") {
    const int64_t d = input.shape.back().size();
    auto m = new_layer(ctx, "LayerNorm");
    m.register_parameter("weight", trainable(torch::ones({d})), false);
    m.register_parameter("bias", trainable(torch::zeros({d})), false);
    m.define(fmt::format(
        "def forward(self, x: Tensor) -> Tensor:\n"
        "  return torch.layer_norm(x, [{}], self.weight, self.bias, 1e-05)\n", d));
    return m;
  }
  if (op == "batchnorm") {
    const int64_t c = input.shape[1].size();
    auto m = new_layer(ctx, "BatchNorm");
    m.register_parameter("weight", trainable(torch::ones({c})), false);
    m.register_parameter("bias", trainable(torch::zeros({c})), false);
    m.register_buffer("running_mean", torch::zeros({c}));
    m.register_buffer("running_var", torch::ones({c}));
    m.register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
    m.define(
        "def forward(self, x: Tensor) -> Tensor:\n"
        "  if self.training:\n"
        "    self.num_batches_tracked.add_(1)\n"
        "  return torch.batch_norm(x, self.weight, self.bias, self.running_mean,\n"
        "      self.running_var, self.training, 0.1, 1e-05, False)\n");
    return m;
  }
  if (op == "scale_offset") {
    auto m = new_layer(ctx, "ScaleOffset");
    auto scale = torch::tensor(kw("scale").number(), torch::kFloat);
    auto offset = torch::tensor(kw("offset").number(), torch::kFloat);
    if (kw("learnable").b) {
      m.register_parameter("scale", trainable(scale), false);
      m.register_parameter("offset", trainable(offset), false);
    } else {
      m.register_buffer("scale", scale);
      m.register_buffer("offset", offset);
    }
    m.define(
        "def forward(self, x: Tensor) -> Tensor:\n"
        "  return x * self.scale + self.offset\n");
    return m;
  }
  if (op == "normalize") {
    auto m = new_layer(ctx, "Normalize");
    std::vector<int64_t> view(rank, 1);
    view[1] = input.shape[1].size();
    std::vector<double> mean, std;
    for (const auto& v : kw("mean").items) mean.push_back(v.number());
    for (const auto& v : kw("std").items) std.push_back(v.number());
    m.register_buffer("mean", torch::tensor(mean, torch::kFloat).view(view));
    m.register_buffer("std", torch::tensor(std, torch::kFloat).view(view));
    m.define(
        "def forward(self, x: Tensor) -> Tensor:\n"
        "  return (x - self.mean) / self.std\n");
    return m;
  }
  return std::nullopt;
}

}  // namespace stitch
