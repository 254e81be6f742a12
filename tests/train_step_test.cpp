// stitch::TrainStep: one step of `stitch train` on a batch in memory.

#include <stitch/stitch.h>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;

class TrainStepTest : public testing::SeededTest {};

/// A linear classifier on seed 001's module1, trained with SGD.
Spec classifier_spec(const std::string& m1_options = "") {
  return parse_spec(
      "inputs:\n"
      "  x: [N, 10]\n"
      "models:\n"
      "  m1: {file: \"" +
          fixture("seed001_ex3_module1.pt") + "\"" + m1_options +
          "}\n"
          "graph:\n"
          "  - y = linear(m1(x), 3)\n"
          "outputs: [y]\n"
          "train:\n"
          "  data: unused.pt\n"
          "  loss: cross_entropy(y, labels)\n"
          "  optimizer: sgd\n"
          "  momentum: 0.9\n"
          "  lr: 0.1\n",
      "classifier.yaml");
}

/// Takes 21 steps on one random batch; expects the loss to drop by 20%.
void expect_the_loss_drops(TrainStep& step) {
  const std::map<std::string, torch::Tensor> batch = {{"x", torch::randn({16, 10})},
                                                      {"labels", torch::randint(0, 3, {16})}};
  const double first = step(batch);
  double last = first;
  for (int i = 0; i < 20; ++i) last = step(batch);
  EXPECT_LT(last, first * 0.8);
}

TEST_F(TrainStepTest, StepsLowerTheLossOnAFixedBatch) {
  const Spec spec = classifier_spec();
  TrainStep step(spec);
  expect_the_loss_drops(step);
  EXPECT_TRUE(step.module().is_training());
}

TEST_F(TrainStepTest, AModelFrozenAsAWholeRunsFoldedWithoutParameters) {
  const Spec spec = classifier_spec(", freeze: true");
  TrainStep step(spec);
  expect_the_loss_drops(step);
  // Its weights are constants of its graph (BuildOptions::fold_frozen)...
  EXPECT_EQ(step.module().attr("m1").toModule().parameters().size(), 0u);
  // ... while a plain training build keeps them, not trainable.
  torch::jit::Module plain = build(spec.graph, BuildOptions().training(true));
  auto params = plain.attr("m1").toModule().parameters();
  ASSERT_GT(params.size(), 0u);
  for (const auto& p : params) EXPECT_FALSE(p.requires_grad());
}

TEST_F(TrainStepTest, AMissingTargetIsNamed) {
  const Spec spec = classifier_spec();
  TrainStep step(spec);
  EXPECT_THROW_TYPE_WITH(step({{"x", torch::randn({4, 10})}}), Error, "no 'labels'");
}

}  // namespace
}  // namespace stitch
