// stitch::bmm and stitch::matmul, the training build's kernel for batched
// products of small matrices (BuildOptions::small_matmul), against ATen's.

#include <stitch/stitch.h>

#include "test_util.h"

namespace stitch {
namespace {

class SmallMatmulTest : public testing::SeededTest {};

using Product = at::Tensor(const at::Tensor&, const at::Tensor&);

/// The operator as a TorchScript graph calls it.
at::Tensor call(const char* name, const at::Tensor& a, const at::Tensor& b) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Product>().call(a, b);
}

/// Product and gradients of stitch's `name` against `reference`, for
/// operands made from `a` and `b` (leaves) by `view`.
void expect_same_as(const char* name, Product reference, const at::Tensor& a0, const at::Tensor& b0,
                    const std::function<at::Tensor(const at::Tensor&)>& view_a,
                    const std::function<at::Tensor(const at::Tensor&)>& view_b) {
  auto a = a0.clone().requires_grad_();
  auto b = b0.clone().requires_grad_();
  auto a_ref = a0.clone().requires_grad_();
  auto b_ref = b0.clone().requires_grad_();
  const at::Tensor out = call(name, view_a(a), view_b(b));
  const at::Tensor expected = reference(view_a(a_ref), view_b(b_ref));
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(out, expected, 1e-5, 1e-5)) << name << " " << a0.sizes();
  const at::Tensor weights = torch::randn_like(expected);
  (out * weights).sum().backward();
  (expected * weights).sum().backward();
  EXPECT_TRUE(torch::allclose(a.grad(), a_ref.grad(), 1e-5, 1e-5)) << name << " grad a";
  EXPECT_TRUE(torch::allclose(b.grad(), b_ref.grad(), 1e-5, 1e-5)) << name << " grad b";
}

at::Tensor same(const at::Tensor& t) {
  return t;
}

at::Tensor transposed(const at::Tensor& t) {
  return t.transpose(-2, -1);
}

at::Tensor aten_bmm(const at::Tensor& a, const at::Tensor& b) {
  return at::bmm(a, b);
}

at::Tensor aten_matmul(const at::Tensor& a, const at::Tensor& b) {
  return at::matmul(a, b);
}

TEST_F(SmallMatmulTest, BmmEqualsAtenWithItsGradientsForEveryLayout) {
  // [P, M, K] @ [P, K, N]: the widths the kernel specializes (16, 32, 64),
  // others, and the largest side it takes.
  for (auto [p, m, k, n] : std::vector<std::array<int64_t, 4>>{{32, 16, 16, 16},
                                                               {8, 32, 32, 32},
                                                               {4, 64, 64, 64},
                                                               {3, 5, 7, 9},
                                                               {1, 1, 1, 1},
                                                               {2, 64, 3, 17}}) {
    expect_same_as("stitch::bmm", aten_bmm, torch::randn({p, m, k}), torch::randn({p, k, n}), same,
                   same);
    // Attention's q @ k^T: b transposed, its rows not contiguous.
    expect_same_as("stitch::bmm", aten_bmm, torch::randn({p, m, k}), torch::randn({p, n, k}), same,
                   transposed);
    expect_same_as("stitch::bmm", aten_bmm, torch::randn({p, k, m}), torch::randn({p, k, n}),
                   transposed, same);
  }
  // A batch that is a view with a stride between matrices (heads of a
  // [L, P, E] tensor) and a broadcast operand (stride 0).
  expect_same_as(
      "stitch::bmm", aten_bmm, torch::randn({12, 8, 16}), torch::randn({1, 16, 12}),
      [](const at::Tensor& t) { return t.transpose(0, 1); },
      [](const at::Tensor& t) {
        return t.expand({8, 16, 12});
      });
}

TEST_F(SmallMatmulTest, BmmHandsWhatItDoesNotComputeToAten) {
  // Too large, another dtype, an empty batch: at::bmm's result exactly.
  const auto big_a = torch::randn({2, 65, 8}), big_b = torch::randn({2, 8, 8});
  EXPECT_TRUE(torch::equal(call("stitch::bmm", big_a, big_b), at::bmm(big_a, big_b)));
  const auto da = torch::randn({2, 4, 4}, torch::kDouble),
             db = torch::randn({2, 4, 4}, torch::kDouble);
  EXPECT_TRUE(torch::equal(call("stitch::bmm", da, db), at::bmm(da, db)));
  EXPECT_EQ(call("stitch::bmm", torch::randn({0, 4, 4}), torch::randn({0, 4, 4})).sizes(),
            (std::vector<int64_t>{0, 4, 4}));
  EXPECT_THROW_WITH(call("stitch::bmm", torch::randn({2, 4, 5}), torch::randn({2, 4, 5})),
                    "batch2 tensor");  // aten::bmm's own message
}

TEST_F(SmallMatmulTest, MatmulTakesEqualBatchDimsAndLeavesTheRestToAten) {
  // [N, heads, L, E] @ [N, heads, E, L], as attention written with matmul.
  expect_same_as("stitch::matmul", aten_matmul, torch::randn({2, 4, 12, 8}),
                 torch::randn({2, 4, 12, 8}), same, transposed);
  expect_same_as("stitch::matmul", aten_matmul, torch::randn({3, 10, 6}), torch::randn({3, 6, 5}),
                 same, same);
  // Broadcasting, vectors and plain matrices: aten::matmul itself.
  for (auto [a, b] : std::vector<std::pair<at::Tensor, at::Tensor>>{
           {torch::randn({2, 3, 4}), torch::randn({4, 5})},
           {torch::randn({1, 3, 4}), torch::randn({2, 4, 5})},
           {torch::randn({3, 4}), torch::randn({4})},
           {torch::randn({3, 4}), torch::randn({4, 2})}}) {
    EXPECT_TRUE(torch::equal(call("stitch::matmul", a, b), at::matmul(a, b)));
  }
}

TEST_F(SmallMatmulTest, ATrainingBuildCallsTheKernelAndAPlainBuildDoesNot) {
  testing::TempDir dir;
  torch::jit::Module attention("Attention");
  attention.define(
      "def forward(self, x):\n"
      "  w = torch.softmax(torch.bmm(x, x.transpose(1, 2)), -1)\n"
      "  return torch.matmul(w.unsqueeze(1), x.unsqueeze(1)).squeeze(1).sum(1)\n");
  attention.save((dir / "attention.pt").string());
  Graph g;
  auto x = g.input("x", {N, 6, 8});
  g.output("y", linear(load(dir / "attention.pt")(x), 2));

  auto calls = [](torch::jit::Module& m) {
    std::string text = m.get_method("forward").graph()->toString();
    return std::make_pair(text.find("stitch::bmm") != std::string::npos,
                          text.find("stitch::matmul") != std::string::npos);
  };
  torch::jit::Module fast = build(g, BuildOptions().training(true).small_matmul(true));
  EXPECT_EQ(calls(fast), std::make_pair(true, true));
  torch::jit::Module plain = build(g, BuildOptions().training(true));
  EXPECT_EQ(calls(plain), std::make_pair(false, false));
  // Inference builds ignore the option: they are artifacts to ship.
  torch::jit::Module shipped = build(g, BuildOptions().small_matmul(true));
  EXPECT_EQ(calls(shipped), std::make_pair(false, false));

  const auto input = torch::randn({3, 6, 8});
  EXPECT_TRUE(torch::allclose(fast.forward({input}).toTensor(), plain.forward({input}).toTensor(),
                              1e-5, 1e-5));
}

}  // namespace
}  // namespace stitch
