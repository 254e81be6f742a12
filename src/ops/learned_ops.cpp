// Learned ops: linear, conv, mlp, embedding, layernorm, batchnorm and
// scale_offset. Each is a submodule with its own weights, its input size
// read from the checked shapes and its init as PyTorch's.

#include <fmt/format.h>

#include <cmath>

#include "ops/op_def.h"

namespace stitch {

namespace {

using K = ParamDef::Kind;

// Shape rules.

ValueType linear(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.empty()) c.fail("linear needs at least one dimension");
  c.need_float(t, 0);
  const int64_t in = c.static_dim(t, t.shape.size() - 1, "input size (last dim)");
  const int64_t out = c.integer("out");
  c.check_size("linear: out", out);
  c.note = fmt::format("Linear({} -> {})", in, out);
  Shape shape = t.shape;
  shape.back() = out;
  return ValueType::tensor(shape, t.dtype);
}

ValueType mlp(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.empty()) c.fail("mlp needs at least one dimension");
  c.need_float(t, 0);
  int64_t in = c.static_dim(t, t.shape.size() - 1, "input size (last dim)");
  const auto sizes = c.ints("sizes");
  const std::string act = c.kw("act").s;
  if (sizes.empty()) c.fail("mlp: sizes must not be empty");
  if (act != "relu" && act != "gelu" && act != "tanh" && act != "sigmoid" && act != "none") {
    c.fail(fmt::format("mlp: act must be relu, gelu, tanh, sigmoid or none, got \"{}\"", act));
  }
  c.note = "MLP(" + std::to_string(in);
  for (auto s : sizes) {
    c.check_size("mlp: size", s);
    c.note += " -> " + std::to_string(s);
  }
  c.note += ")";
  Shape shape = t.shape;
  shape.back() = sizes.back();
  return ValueType::tensor(shape, t.dtype);
}

Dim conv_size(const ShapeCall& c, const Dim& in, int64_t k, int64_t s, int64_t p) {
  if (in.is_static()) {
    int64_t out = (in.size() + 2 * p - k) / s + 1;
    if (in.size() + 2 * p < k || out <= 0) {
      c.fail(fmt::format("conv: kernel {} does not fit an input of size {} with padding {}", k,
                         in.size(), p));
    }
    return Dim(out);
  }
  if (s == 1 && 2 * p == k - 1) return in;
  c.fail(
      fmt::format("conv: cannot tell the output size for the dynamic size {} "
                  "(kernel {}, stride {}, padding {})\n  fix: declare that "
                  "dimension with a fixed size in inputs",
                  in.str(), k, s, p));
}

ValueType conv(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.size() != 3 && t.shape.size() != 4) {
    c.fail(fmt::format(
        "conv needs [N, C, L] or [N, C, H, W], but {} is {}{}", c.arg(0), t.str(),
        t.shape.size() == 2 && t.shape[1].is_static()
            ? fmt::format("\n  fix: linear({}, {})   or   conv(reshape({}, "
                          "[-1, 1, {}]), {})",
                          c.arg(0), c.integer("out"), c.arg(0), t.shape[1].size(), c.integer("out"))
            : ""));
  }
  c.need_float(t, 0);
  const int64_t in = c.static_dim(t, 1, "channel count (dim 1)");
  const int64_t out = c.integer("out"), k = c.integer("kernel"), s = c.integer("stride"),
                p = c.integer("padding");
  if (out <= 0 || k <= 0 || s <= 0 || p < 0) {
    c.fail("conv: out, kernel and stride must be positive and padding not negative");
  }
  c.check_size("conv: out", out);
  c.check_size("conv: kernel", k);
  Shape shape = {t.shape[0], Dim(out)};
  for (size_t d = 2; d < t.shape.size(); ++d) {
    shape.push_back(conv_size(c, t.shape[d], k, s, p));
  }
  c.note = fmt::format("Conv{}d({} -> {}, kernel {})", t.shape.size() - 2, in, out, k);
  return ValueType::tensor(shape, t.dtype);
}

ValueType embedding(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  if (!at::isIntegralType(t.dtype, false)) {
    c.fail(fmt::format("embedding needs integer token ids, but {} is {}", c.arg(0), t.str()));
  }
  c.check_size("embedding: vocab", c.integer("vocab"));
  c.check_size("embedding: dim", c.integer("dim"));
  Shape shape = t.shape;
  shape.emplace_back(c.integer("dim"));
  c.note = fmt::format("Embedding({}, {})", c.integer("vocab"), c.integer("dim"));
  return ValueType::tensor(shape, at::kFloat);
}

ValueType layernorm(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.empty()) c.fail("layernorm needs at least one dimension");
  c.need_float(t, 0);
  c.note = fmt::format("LayerNorm({})", c.static_dim(t, t.shape.size() - 1, "last dim"));
  return t;
}

ValueType batchnorm(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.size() < 2 || t.shape.size() > 5) {
    c.fail(fmt::format("batchnorm needs [N, C, ...], but {} is {}", c.arg(0), t.str()));
  }
  c.need_float(t, 0);
  c.note = fmt::format("BatchNorm({})", c.static_dim(t, 1, "channel count (dim 1)"));
  return t;
}

// Layers.

torch::Tensor trainable(torch::Tensor t) {
  return t.set_requires_grad(true);
}

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
  auto m = new_module(ctx.cu, "Linear");
  add_weight_and_bias(m, ctx, {out, in}, in, bias);
  m.define(
      fmt::format("def forward(self, x: Tensor) -> Tensor:\n"
                  "  return torch.linear(x, self.weight, {})\n",
                  bias ? "self.bias" : "None"));
  return m;
}

std::string activation(const std::string& act, const std::string& x) {
  if (act == "none") return x;
  return fmt::format("torch.{}({})", act, x);
}

torch::jit::Module linear_module(const LowerCall& c, LayerContext& ctx) {
  return linear_layer(ctx, c.input.shape.back().size(), c.kw("out").i, c.kw("bias").b);
}

torch::jit::Module conv_module(const LowerCall& c, LayerContext& ctx) {
  const int64_t in = c.input.shape[1].size(), out = c.kw("out").i, k = c.kw("kernel").i;
  const int64_t spatial = static_cast<int64_t>(c.rank()) - 2;
  auto m = new_module(ctx.cu, fmt::format("Conv{}d", spatial));
  std::vector<int64_t> sizes = {out, in};
  for (int64_t d = 0; d < spatial; ++d) sizes.push_back(k);
  add_weight_and_bias(m, ctx, sizes, in * static_cast<int64_t>(std::pow(k, spatial)), true);
  std::string s = std::to_string(c.kw("stride").i), p = std::to_string(c.kw("padding").i);
  m.define(
      fmt::format("def forward(self, x: Tensor) -> Tensor:\n"
                  "  return torch.conv{}d(x, self.weight, self.bias, [{}], [{}])\n",
                  spatial, spatial == 2 ? s + ", " + s : s, spatial == 2 ? p + ", " + p : p));
  return m;
}

torch::jit::Module mlp_module(const LowerCall& c, LayerContext& ctx) {
  auto m = new_module(ctx.cu, "MLP");
  int64_t in = c.input.shape.back().size();
  const auto& sizes = c.kw("sizes").items;
  const double p = c.kw("dropout").number();
  std::string body = "def forward(self, x: Tensor) -> Tensor:\n";
  for (size_t i = 0; i < sizes.size(); ++i) {
    m.register_module("fc" + std::to_string(i), linear_layer(ctx, in, sizes[i].i, true));
    in = sizes[i].i;
    body += fmt::format("  x = self.fc{}.forward(x)\n", i);
    if (i + 1 < sizes.size()) {
      body += "  x = " + activation(c.kw("act").s, "x") + "\n";
      if (p > 0) body += fmt::format("  x = torch.dropout(x, {}, self.training)\n", p);
    }
  }
  m.define(body + "  return x\n");
  return m;
}

torch::jit::Module embedding_module(const LowerCall& c, LayerContext& ctx) {
  auto m = new_module(ctx.cu, "Embedding");
  m.register_parameter(
      "weight",
      trainable(torch::empty({c.kw("vocab").i, c.kw("dim").i}).normal_(0, 1, ctx.generator)),
      false);
  m.define(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "  return torch.embedding(self.weight, x)\n");
  return m;
}

torch::jit::Module layernorm_module(const LowerCall& c, LayerContext& ctx) {
  const int64_t d = c.input.shape.back().size();
  auto m = new_module(ctx.cu, "LayerNorm");
  m.register_parameter("weight", trainable(torch::ones({d})), false);
  m.register_parameter("bias", trainable(torch::zeros({d})), false);
  m.define(
      fmt::format("def forward(self, x: Tensor) -> Tensor:\n"
                  "  return torch.layer_norm(x, [{}], self.weight, self.bias, 1e-05)\n",
                  d));
  return m;
}

torch::jit::Module batchnorm_module(const LowerCall& c, LayerContext& ctx) {
  const int64_t channels = c.input.shape[1].size();
  auto m = new_module(ctx.cu, "BatchNorm");
  m.register_parameter("weight", trainable(torch::ones({channels})), false);
  m.register_parameter("bias", trainable(torch::zeros({channels})), false);
  m.register_buffer("running_mean", torch::zeros({channels}));
  m.register_buffer("running_var", torch::ones({channels}));
  m.register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  m.define(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "  if self.training:\n"
      "    self.num_batches_tracked.add_(1)\n"
      "  return torch.batch_norm(x, self.weight, self.bias, self.running_mean,\n"
      "      self.running_var, self.training, 0.1, 1e-05, False)\n");
  return m;
}

torch::jit::Module scale_offset_module(const LowerCall& c, LayerContext& ctx) {
  auto m = new_module(ctx.cu, "ScaleOffset");
  auto scale = torch::tensor(c.kw("scale").number(), torch::kFloat);
  auto offset = torch::tensor(c.kw("offset").number(), torch::kFloat);
  if (c.kw("learnable").b) {
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

}  // namespace

std::vector<OpDef> learned_ops() {
  const ParamDef x = required("x", K::Tensor);
  auto layer = [](OpSignature sig, ShapeRule rule, LayerLowering make) {
    return OpDef{std::move(sig), rule, nullptr, make};
  };
  return {
      layer({"linear", "learned", {x, required("out", K::Int), optional("bias", K::Bool, true)}},
            linear, linear_module),
      layer({"conv",
             "learned",
             {x, required("out", K::Int), optional("kernel", K::Int, 1),
              optional("stride", K::Int, 1), optional("padding", K::Int, 0)}},
            conv, conv_module),
      layer({"mlp",
             "learned",
             {x, required("sizes", K::IntList), optional("act", K::String, "relu"),
              optional("dropout", K::Float, 0.0)}},
            mlp, mlp_module),
      layer({"embedding", "learned", {x, required("vocab", K::Int), required("dim", K::Int)}},
            embedding, embedding_module),
      layer({"layernorm", "learned", {x}}, layernorm, layernorm_module),
      layer({"batchnorm", "learned", {x}}, batchnorm, batchnorm_module),
      layer({"scale_offset",
             "learned",
             {x, optional("scale", K::Float, 1.0), optional("offset", K::Float, 0.0),
              optional("learnable", K::Bool, true)}},
            float_tensor, scale_offset_module),
  };
}

}  // namespace stitch
