// stitch's compatibility operators (stitch/compat.h), called through the
// dispatcher as a loaded model calls them. Their numbers against PyTorch 2.6
// itself are in tests/python/test_torch2_models.py; these pin the schema's
// corners against the formula written out.
#include "stitch/compat.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <limits>

namespace {

#if TORCH_VERSION_MAJOR < 2

c10::OperatorHandle sdpa() {
  stitch::register_compat_operators();
  return c10::Dispatcher::singleton().findSchemaOrThrow("aten::scaled_dot_product_attention", "");
}

at::Tensor call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                c10::optional<at::Tensor> mask, double dropout, bool causal,
                c10::optional<double> scale, bool gqa) {
  return sdpa()
      .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                        const c10::optional<at::Tensor>&, double, bool, c10::optional<double>,
                        bool)>()
      .call(q, k, v, mask, dropout, causal, scale, gqa);
}

at::Tensor by_formula(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& additive_mask, double scale) {
  return torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * scale + additive_mask, -1)
      .matmul(v);
}

TEST(CompatTest, TheOperatorIsRegisteredWithPyTorch2sSchema) {
  EXPECT_EQ(stitch::compat_operators(),
            std::vector<std::string>{"aten::scaled_dot_product_attention"});
  const auto& schema = sdpa().schema();
  ASSERT_EQ(schema.arguments().size(), 8u);
  EXPECT_EQ(schema.arguments()[6].name(), "scale");
  EXPECT_TRUE(schema.arguments()[6].kwarg_only());
  EXPECT_EQ(schema.arguments()[7].name(), "enable_gqa");
}

TEST(CompatTest, MasksCausalScaleAndGroupedHeadsFollowTheFormula) {
  torch::manual_seed(0);
  const auto q = torch::randn({2, 4, 5, 8}), k = torch::randn({2, 2, 5, 8}),
             v = torch::randn({2, 2, 5, 8});
  const auto k4 = k.repeat_interleave(2, 1), v4 = v.repeat_interleave(2, 1);
  const double default_scale = 1.0 / std::sqrt(8.0);
  const auto none = torch::zeros({5, 5});
  EXPECT_TRUE(torch::allclose(call(q, k4, v4, c10::nullopt, 0.0, false, c10::nullopt, false),
                              by_formula(q, k4, v4, none, default_scale), 1e-5, 1e-6));
  const auto causal = torch::full({5, 5}, -std::numeric_limits<float>::infinity()).triu(1);
  EXPECT_TRUE(torch::allclose(call(q, k, v, c10::nullopt, 0.0, true, 0.3, true),
                              by_formula(q, k4, v4, causal, 0.3), 1e-5, 1e-6));
  const auto allowed = torch::rand({2, 1, 5, 5}) > 0.3;
  const auto additive =
      torch::zeros({2, 1, 5, 5})
          .masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(torch::allclose(call(q, q, q, allowed, 0.0, false, -0.5, false),
                              by_formula(q, q, q, additive, -0.5), 1e-5, 1e-6));
}

TEST(CompatTest, AFullyMaskedRowAttendsToNothing) {
  const auto q = torch::randn({1, 1, 3, 4});
  auto allowed = torch::ones({3, 3}, torch::kBool);
  allowed[1] = false;
  const auto out = call(q, q, q, allowed, 0.0, false, c10::nullopt, false);
  EXPECT_TRUE(torch::equal(out[0][0][1], torch::zeros({4})));
  EXPECT_FALSE(out.isnan().any().item<bool>());
}

TEST(CompatTest, ItTrainsAndRefusesAMaskWithIsCausal) {
  const auto q = torch::randn({1, 2, 3, 4}, torch::requires_grad());
  call(q, q, q, c10::nullopt, 0.0, true, c10::nullopt, false).sum().backward();
  ASSERT_TRUE(q.grad().defined());
  EXPECT_GT(q.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_THROW(call(q, q, q, torch::zeros({3, 3}), 0.0, true, c10::nullopt, false), c10::Error);
}

#else

TEST(CompatTest, LibTorch2NeedsNone) {
  EXPECT_TRUE(stitch::compat_operators().empty());
}

#endif

}  // namespace
