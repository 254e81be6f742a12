// Walks the op table: every built-in op has a shape rule, builds, survives a
// TorchScript save and load, and gives what LibTorch's own functions (the
// kernels PyTorch runs) give. A new op without a case here fails the walk.

#include <stitch/stitch.h>

#include <functional>
#include <map>

#include "ops/registry.h"
#include "test_util.h"

namespace stitch {
namespace {

using testing::TempDir;

/// One op's case: the graph it is called in (through the C++ API), the
/// inputs, and the reference computed from the built module's layer.
struct OpCase {
  std::function<Value(Graph&)> graph;
  std::vector<torch::Tensor> inputs;
  std::function<torch::Tensor(const std::vector<torch::Tensor>&, const torch::jit::Module& layer)>
      reference;
};

torch::Tensor param(const torch::jit::Module& m, const char* name) {
  return m.attr(name).toTensor();
}

std::map<std::string, OpCase> op_cases() {
  using Xs = std::vector<torch::Tensor>;
  using M = torch::jit::Module;
  const auto image = torch::randn({3, 4, 6, 6});
  const auto rows = torch::randn({3, 8});
  auto image_input = [](Graph& g) { return g.input("x", {N, 4, 6, 6}); };
  auto rows_input = [](Graph& g) { return g.input("x", {N, 8}); };
  auto two_rows = [](Graph& g) {
    // Two statements: the order of a call's arguments is unspecified, and the
    // inputs must be declared a, then b.
    Value a = g.input("a", {N, 8});
    Value b = g.input("b", {N, 8});
    return std::make_pair(a, b);
  };
  const Xs pair = {torch::randn({3, 8}), torch::randn({3, 8})};
  std::map<std::string, OpCase> cases;
  // merge
  cases["concat"] = {[=](Graph& g) {
                       auto [a, b] = two_rows(g);
                       return concat({a, b});
                     },
                     pair,
                     [](const Xs& x, const M&) {
                       return torch::cat({x[0], x[1]}, 1);
                     }};
  cases["stack"] = {[=](Graph& g) {
                      auto [a, b] = two_rows(g);
                      return stack({a, b});
                    },
                    pair,
                    [](const Xs& x, const M&) {
                      return torch::stack({x[0], x[1]}, 1);
                    }};
  cases["add"] = {[=](Graph& g) {
                    auto [a, b] = two_rows(g);
                    return add({a, b});
                  },
                  pair, [](const Xs& x, const M&) { return x[0] + x[1]; }};
  cases["mul"] = {[=](Graph& g) {
                    auto [a, b] = two_rows(g);
                    return mul(a, b);
                  },
                  pair, [](const Xs& x, const M&) { return x[0] * x[1]; }};
  cases["sub"] = {[=](Graph& g) {
                    auto [a, b] = two_rows(g);
                    return (a - b) * 2.0;
                  },
                  pair, [](const Xs& x, const M&) { return (x[0] - x[1]) * 2.0; }};
  // combine: three models' logits over 5 classes, the most frequent argmax
  // counted row by row (ties to the lowest class)
  cases["ensemble"] = {[](Graph& g) {
                         Value a = g.input("a", {N, 5});
                         Value b = g.input("b", {N, 5});
                         Value c = g.input("c", {N, 5});
                         return ensemble({a, b, c}, "vote");
                       },
                       {torch::randn({16, 5}), torch::randn({16, 5}), torch::randn({16, 5})},
                       [](const Xs& x, const M&) {
                         auto out = torch::empty({16}, torch::kLong);
                         for (int64_t row = 0; row < 16; ++row) {
                           std::vector<int> counts(5, 0);
                           for (const auto& t : x) ++counts[t[row].argmax().item<int64_t>()];
                           out[row] =
                               std::max_element(counts.begin(), counts.end()) - counts.begin();
                         }
                         return out;
                       }};
  // shape
  cases["flatten"] = {[=](Graph& g) { return flatten(image_input(g)); },
                      {image},
                      [](const Xs& x, const M&) { return x[0].flatten(1); }};
  cases["reshape"] = {[=](Graph& g) {
                        return reshape(image_input(g), {-1, 16, 9});
                      },
                      {image},
                      [](const Xs& x, const M&) {
                        return x[0].reshape({-1, 16, 9});
                      }};
  cases["permute"] = {[=](Graph& g) {
                        return permute(image_input(g), {0, 2, 3, 1});
                      },
                      {image},
                      [](const Xs& x, const M&) {
                        return x[0].permute({0, 2, 3, 1});
                      }};
  cases["unsqueeze"] = {[=](Graph& g) { return unsqueeze(rows_input(g), 1); },
                        {rows},
                        [](const Xs& x, const M&) { return x[0].unsqueeze(1); }};
  cases["squeeze"] = {[=](Graph& g) { return squeeze(unsqueeze(rows_input(g), 2), 2); },
                      {rows},
                      [](const Xs& x, const M&) { return x[0]; }};
  cases["mean"] = {[=](Graph& g) { return mean(image_input(g), 2); },
                   {image},
                   [](const Xs& x, const M&) { return x[0].mean(2); }};
  cases["select"] = {[=](Graph& g) { return select(image_input(g), 1, 2); },
                     {image},
                     [](const Xs& x, const M&) { return x[0].select(1, 2); }};
  cases["pool"] = {[=](Graph& g) { return pool(image_input(g), "max"); },
                   {image},
                   [](const Xs& x, const M&) {
                     return x[0].amax({2, 3});
                   }};
  cases["resize"] = {[=](Graph& g) {
                       return resize(image_input(g), {9, 4});
                     },
                     {image},
                     [](const Xs& x, const M&) {  // F.interpolate(x, [9, 4], mode="bilinear")
                       return at::upsample_bilinear2d(x[0], {9, 4}, /*align_corners=*/false);
                     }};
  // learned: the reference applies the built layer's own weights
  cases["linear"] = {[=](Graph& g) { return linear(rows_input(g), 5); },
                     {rows},
                     [](const Xs& x, const M& l) {
                       return torch::linear(x[0], param(l, "weight"), param(l, "bias"));
                     }};
  cases["conv"] = {[=](Graph& g) { return conv(image_input(g), 5, 3, 2, 1); },
                   {image},
                   [](const Xs& x, const M& l) {
                     return torch::conv2d(x[0], param(l, "weight"), param(l, "bias"), 2, 1);
                   }};
  cases["mlp"] = {[=](Graph& g) {
                    return mlp(rows_input(g), {6, 2}, "tanh");
                  },
                  {rows},
                  [](const Xs& x, const M& l) {
                    auto fc = [&](const char* name, torch::Tensor h) {
                      auto m = l.attr(name).toModule();
                      return torch::linear(h, param(m, "weight"), param(m, "bias"));
                    };
                    return fc("fc1", torch::tanh(fc("fc0", x[0])));
                  }};
  cases["embedding"] = {
      [](Graph& g) {
        return embedding(g.input("ids", {N, 5}, at::kLong), 11, 4);
      },
      {torch::randint(11, {3, 5})},
      [](const Xs& x, const M& l) { return torch::embedding(param(l, "weight"), x[0]); }};
  cases["layernorm"] = {[=](Graph& g) { return layernorm(rows_input(g)); },
                        {rows},
                        [](const Xs& x, const M&) { return torch::layer_norm(x[0], {8}); }};
  cases["batchnorm"] = {[=](Graph& g) { return batchnorm(image_input(g)); },
                        {image},
                        [](const Xs& x, const M&) {  // eval: the initial running stats
                          return x[0] / std::sqrt(1.0 + 1e-5);
                        }};
  cases["scale_offset"] = {[=](Graph& g) { return scale_offset(rows_input(g), 2.5, -1.0); },
                           {rows},
                           [](const Xs& x, const M&) { return x[0] * 2.5 - 1.0; }};
  // fixed
  cases["normalize"] = {
      [=](Graph& g) {
        return normalize(image_input(g), {0.1, 0.2, 0.3, 0.4}, {1.0, 2.0, 0.5, 4.0});
      },
      {image},
      [](const Xs& x, const M&) {
        auto mean = torch::tensor({0.1, 0.2, 0.3, 0.4}).view({1, 4, 1, 1});
        auto std = torch::tensor({1.0, 2.0, 0.5, 4.0}).view({1, 4, 1, 1});
        return (x[0] - mean) / std;
      }};
  cases["relu"] = {[=](Graph& g) { return relu(rows_input(g)); },
                   {rows},
                   [](const Xs& x, const M&) { return torch::relu(x[0]); }};
  cases["gelu"] = {[=](Graph& g) { return gelu(rows_input(g)); },
                   {rows},
                   [](const Xs& x, const M&) { return torch::gelu(x[0]); }};
  cases["sigmoid"] = {[=](Graph& g) { return sigmoid(rows_input(g)); },
                      {rows},
                      [](const Xs& x, const M&) { return torch::sigmoid(x[0]); }};
  cases["tanh"] = {[=](Graph& g) { return tanh(rows_input(g)); },
                   {rows},
                   [](const Xs& x, const M&) { return torch::tanh(x[0]); }};
  cases["softmax"] = {[=](Graph& g) { return softmax(rows_input(g), 1); },
                      {rows},
                      [](const Xs& x, const M&) { return torch::softmax(x[0], 1); }};
  cases["dropout"] = {[=](Graph& g) { return dropout(rows_input(g), 0.5); },
                      {rows},
                      [](const Xs& x, const M&) { return x[0]; }};  // eval: the identity
  cases["l2norm"] = {[=](Graph& g) { return l2norm(rows_input(g)); },
                     {rows},
                     [](const Xs& x, const M&) {  // F.normalize(x, dim=1)
                       return x[0] / x[0].norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
                     }};
  cases["adapt"] = {[=](Graph& g) {
                      return adapt(image_input(g), Shape{N, 144});
                    },
                    {image},
                    [](const Xs& x, const M&) { return x[0].flatten(1); }};
  return cases;
}

/// The built-in layer a one-op graph built, or an empty module.
torch::jit::Module only_layer(const torch::jit::Module& built) {
  for (const auto& child : built.named_children()) return child.value;
  return torch::jit::Module();
}

class OpRegistry : public testing::SeededTest {};

TEST_F(OpRegistry, EveryOpHasAShapeRuleAndBuilds) {
  const auto cases = op_cases();
  TempDir dir;
  for (const OpDef* op : all_ops()) {
    SCOPED_TRACE(op->name());
    const bool planned_by_check = op->name() == "adapt";
    EXPECT_TRUE(op->infer != nullptr || planned_by_check) << "no shape rule";
    EXPECT_TRUE((op->lower != nullptr) != (op->layer != nullptr) || planned_by_check)
        << "needs one lowering: an expression or a layer";
    auto it = cases.find(op->name());
    ASSERT_NE(it, cases.end()) << "no case in op_cases(): add one with its C++ API call";
    const OpCase& c = it->second;

    Graph g;
    g.output("y", c.graph(g));
    const CheckReport report = check(g);
    const ValueType& checked = report.nodes.back().type;
    const auto file = dir / (op->name() + ".pt");
    save(g.build(), file);
    auto loaded = torch::jit::load(file.string());
    loaded.eval();
    std::vector<c10::IValue> inputs(c.inputs.begin(), c.inputs.end());
    torch::NoGradGuard no_grad;
    const torch::Tensor got = loaded.forward(inputs).toTensor();
    const torch::Tensor want = c.reference(c.inputs, only_layer(loaded));

    EXPECT_EQ(checked.dtype, got.scalar_type());
    ASSERT_EQ(checked.shape.size(), static_cast<size_t>(got.dim())) << checked.str();
    for (int64_t d = 1; d < got.dim(); ++d) {  // dim 0 is N
      EXPECT_EQ(checked.shape[d], Dim(got.size(d))) << checked.str() << " dim " << d;
    }
    ASSERT_EQ(want.sizes(), got.sizes());
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << (got - want).abs().max();
  }
  EXPECT_EQ(all_ops().size(), cases.size()) << "a case for an op the table does not have";
}

}  // namespace
}  // namespace stitch
