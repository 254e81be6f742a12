// Training: the train: section and its loss expression, and short runs that
// check what must never change (frozen weights, frozen BatchNorm statistics)
// and how bad data is refused.

#include <fmt/format.h>
#include <stitch/artifact.h>
#include <stitch/build.h>
#include <stitch/spec.h>
#include <stitch/tensor_io.h>
#include <stitch/train.h>

#include <fstream>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;
using testing::TempDir;

class TrainTest : public testing::SeededTest {};

// --- the loss expression -------------------------------------------------

TEST_F(TrainTest, LossParsesAWeightedSumOfCalls) {
  auto terms = parse_loss(
      "0.5 * mse(a, b) + cross_entropy(logits, labels) * 2 - "
      "clip(x, y, temperature=0.1)");
  ASSERT_EQ(terms.size(), 3u);
  EXPECT_EQ(terms[0].fn, "mse");
  EXPECT_DOUBLE_EQ(terms[0].weight, 0.5);
  EXPECT_EQ(terms[0].args, (std::vector<std::string>{"a", "b"}));
  EXPECT_DOUBLE_EQ(terms[1].weight, 2.0);
  EXPECT_DOUBLE_EQ(terms[2].weight, -1.0);
  EXPECT_DOUBLE_EQ(terms[2].options.at("temperature"), 0.1);
}

TEST_F(TrainTest, LossOptionsHaveTheirDefaults) {
  auto terms = parse_loss("contrastive(a, b, same)");
  EXPECT_DOUBLE_EQ(terms[0].options.at("margin"), 1.0);
  EXPECT_DOUBLE_EQ(parse_loss("clip(a, b)")[0].options.at("temperature"), 0.07);
}

TEST_F(TrainTest, LossOptionsMayBeGivenByPosition) {
  // PRODUCT.md writes clip(a, b, temperature).
  EXPECT_DOUBLE_EQ(parse_loss("clip(a, b, 0.5)")[0].options.at("temperature"), 0.5);
  auto terms = parse_loss("contrastive(a, b, same, 1.5) / 4");
  EXPECT_EQ(terms[0].args, (std::vector<std::string>{"a", "b", "same"}));
  EXPECT_DOUBLE_EQ(terms[0].options.at("margin"), 1.5);
  EXPECT_DOUBLE_EQ(terms[0].weight, 0.25);
  EXPECT_THROW_WITH(parse_loss("clip(a, 0.5, b)"), "clip takes 2 tensors, then temperature");
  EXPECT_THROW_WITH(parse_loss("clip(a, b, 0.5, temperature=0.1)"), "temperature is given twice");
  EXPECT_THROW_WITH(parse_loss("mse(a, b, 2)"), "mse takes no number");
  EXPECT_THROW_WITH(parse_loss("mse(a, b) / 0"), "division by zero");
}

TEST_F(TrainTest, UnknownLossListsTheLosses) {
  EXPECT_THROW_WITH(parse_loss("hinge(a, b)"),
                    "unknown loss 'hinge'; the losses are "
                    "cross_entropy, mse, bce, clip, contrastive");
}

TEST_F(TrainTest, LossWithTheWrongNumberOfTensorsIsRefused) {
  EXPECT_THROW_WITH(parse_loss("mse(a)"), "mse takes 2 tensors, got 1 (a)");
  EXPECT_THROW_WITH(parse_loss("mse(a, b, margin=2)"), "mse has no option 'margin'");
  EXPECT_THROW_WITH(parse_loss("mse(a, b) +"), "expected a name");
}

// --- the train: section --------------------------------------------------

const char* kSmallSpec = R"(
inputs:
  x: [N, 4]
graph:
  - logits = linear(x, 3)
outputs: [logits]
)";

Spec small_spec(const TempDir& dir, const std::string& train) {
  return parse_spec(std::string(kSmallSpec) + "train:\n" + train, dir / "spec.yaml");
}

TEST_F(TrainTest, ConfigFillsDefaultsAndResolvesPathsFromTheSpecFolder) {
  TempDir dir;
  Spec spec = small_spec(dir, "  data: d.pt\n  loss: cross_entropy(logits, y)\n");
  TrainConfig c = parse_train_config(spec);
  EXPECT_EQ(c.data, dir / "d.pt");
  EXPECT_EQ(c.out, dir / "runs" / "spec");
  EXPECT_EQ(c.optimizer, "adamw");
  EXPECT_FALSE(c.weight_decay.has_value());
  EXPECT_EQ(c.targets(spec.graph), std::vector<std::string>{"y"});
}

TEST_F(TrainTest, ConfigErrorsNameTheKey) {
  TempDir dir;
  auto parse = [&](const std::string& train) {
    Spec spec = small_spec(dir, train);
    return parse_train_config(spec);
  };
  EXPECT_THROW_WITH(
      parse("  data: d.pt\n  loss: mse(logits, y)\n  optimiser: sgd\n"),
      "spec.yaml:10:3: unknown key 'optimiser' in train\n  fix: did you mean 'optimizer'?");
  // Every error carries the line and column of the key's value in the spec.
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  lr: -1\n"),
                    "spec.yaml:10:7: train.lr: must be > 0, got -1");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  epochs: many\n"),
                    "spec.yaml:10:11: train.epochs: expected an integer, got 'many'");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, x)\n"),
                    "spec.yaml:9:9: train.loss: mse(logits, x) reads 'x', which is a graph input");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  optimizer: lbfgs\n"),
                    "unknown optimizer 'lbfgs'");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  out: ''\n"),
                    "train.out is empty");
  // YAML would keep one of the two silently.
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  batch: 8\n  batch: 100\n"),
                    "'batch' appears twice in train (first at line");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  feed: {x: a, x: b}\n"),
                    "'x' appears twice in train.feed");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  optimizer: adam\n"
                          "  momentum: 0.9\n"),
                    "train.momentum: only sgd takes momentum (optimizer is adam)");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  lr: fast\n"),
                    "train.lr: expected a number, got 'fast'");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, x)\n"),
                    "reads 'x', which is a graph input");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  feed: {z: zz}\n"),
                    "'z' is neither a spec input nor a name the loss reads");
  EXPECT_THROW_WITH(parse("  loss: mse(logits, y)\n"), "needs data");
  // Not-a-number and infinite settings are refused where they are read
  // (a NaN val_split used to pass the range check and reach a float-to-int
  // conversion: undefined behaviour, found by the sanitized test run).
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  val_split: .nan\n"),
                    "train.val_split: expected a finite number, got '.nan'");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  lr: .inf\n"),
                    "train.lr: expected a finite number");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: mse(logits, y)\n  weight_decay: -1\n"),
                    "train.weight_decay: must be >= 0");
  EXPECT_THROW_WITH(parse("  data: d.pt\n  loss: 1e999 * mse(logits, y)\n"),
                    "expected a finite number");
}

// --- short runs ----------------------------------------------------------

/// A run with its log captured and no progress output.
TrainResult run(const Spec& spec, std::vector<std::string>* log = nullptr, bool resume = false) {
  return train(spec,
               TrainOptions().progress(false).resume(resume).log([log](const std::string& line) {
                 if (log) log->push_back(line);
               }));
}

std::map<std::string, torch::Tensor> state(const torch::jit::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.name] = p.value.detach().clone();
  for (const auto& b : m.named_buffers(true)) out[b.name] = b.value.detach().clone();
  return out;
}

/// resnet18 (a fixture with BatchNorm everywhere) cut at avgpool plus a new
/// head, trained on random images.
Spec resnet_spec(const TempDir& dir, const std::string& freeze) {
  write_tensors(dir / "data.pt",
                {{"image", torch::randn({12, 3, 32, 32})}, {"labels", torch::randint(0, 4, {12})}});
  return parse_spec(fmt::format(R"(
inputs:
  image: [N, 3, 32, 32]
models:
  vision: {{file: {}, cut: avgpool, freeze: {}}}
graph:
  - logits = linear(flatten(vision(image)), 4)
outputs: [logits]
train:
  data: data.pt
  loss: cross_entropy(logits, labels)
  optimizer: sgd
  lr: 0.1
  epochs: 1
  batch: 4
  out: run
)",
                                fixture("resnet18.pt"), freeze),
                    dir / "spec.yaml");
}

TEST_F(TrainTest, FrozenModelKeepsItsWeightsAndBatchNormStatisticsBitForBit) {
  TempDir dir;
  Spec spec = resnet_spec(dir, "true");
  auto before = state(load_module(fixture("resnet18.pt")));
  TrainResult r = run(spec);
  auto trained = load_module(r.model);
  auto after = state(trained);
  int compared = 0;
  for (const auto& [name, t] : after) {
    if (name.rfind("vision.", 0) != 0) continue;
    ASSERT_TRUE(before.count(name.substr(7))) << name;
    EXPECT_TRUE(torch::equal(before.at(name.substr(7)), t)) << name << " changed";
    ++compared;
  }
  EXPECT_GT(compared, 50);
  // The head did train.
  auto head = after.at("logits.weight");
  EXPECT_FALSE(torch::equal(head, state(build(spec.graph)).at("logits.weight")));
  EXPECT_TRUE(std::filesystem::exists(dir / "run" / "metrics.csv"));
  EXPECT_EQ(r.steps, 3);
}

TEST_F(TrainTest, GlobFrozenBatchNormStaysInEvalWhileTheRestTrains) {
  TempDir dir;
  Spec spec = resnet_spec(dir, "[conv1.*, bn1.*, layer1.*]");
  auto before = state(load_module(fixture("resnet18.pt")));
  auto after = state(load_module(run(spec).model));
  for (const char* frozen :
       {"bn1.running_mean", "layer1.0.bn2.running_var", "conv1.weight", "layer1.1.conv1.weight"}) {
    EXPECT_TRUE(torch::equal(before.at(frozen), after.at(std::string("vision.") + frozen)))
        << frozen;
  }
  for (const char* trains : {"layer2.0.bn1.running_mean", "layer2.0.conv1.weight"}) {
    EXPECT_FALSE(torch::equal(before.at(trains), after.at(std::string("vision.") + trains)))
        << trains;
  }
}

TEST_F(TrainTest, MissingDataKeyIsOneClearErrorNamingTheKeys) {
  TempDir dir;
  write_tensors(dir / "d.pt", {{"inputs", torch::randn({8, 4})}, {"y", torch::zeros({8, 3})}});
  Spec spec = small_spec(dir, "  data: d.pt\n  loss: mse(logits, y)\n");
  EXPECT_THROW_WITH(run(spec), "no tensor 'x' for input 'x'\n  the file holds: inputs, y");
}

TEST_F(TrainTest, MismatchedLengthsAndNaNInDataAreRefused) {
  TempDir dir;
  write_tensors(dir / "d.pt", {{"x", torch::randn({8, 4})}, {"y", torch::zeros({7, 3})}});
  Spec spec = small_spec(dir, "  data: d.pt\n  loss: mse(logits, y)\n");
  EXPECT_THROW_WITH(run(spec), "'y' has 7 samples but 'x' has 8");
  auto x = torch::randn({8, 4});
  x[5][1] = std::nan("");
  write_tensors(dir / "d.pt", {{"x", x}, {"y", torch::zeros({8, 3})}});
  EXPECT_THROW_WITH(run(spec), "'x' holds 1 NaN or Inf values (the first in sample 5)");
}

TEST_F(TrainTest, ExplodingLossStopsWithTheLastGoodCheckpointKept) {
  TempDir dir;
  write_tensors(dir / "d.pt", {{"x", torch::randn({64, 4}) * 100}, {"y", torch::randn({64, 3})}});
  Spec spec =
      small_spec(dir,
                 "  data: d.pt\n  loss: mse(logits, y)\n  optimizer: sgd\n"
                 "  lr: 1e6\n  batch: 8\n  epochs: 50\n  checkpoint_every: 1\n  out: run\n");
  EXPECT_THROW_WITH(run(spec), "the last good checkpoint is kept");
  EXPECT_FALSE(std::filesystem::exists(dir / "run" / "model.pt"));
}

TEST_F(TrainTest, LrForAnUnknownModelIsRefused) {
  TempDir dir;
  write_tensors(dir / "d.pt", {{"x", torch::randn({8, 4})}, {"y", torch::zeros({8, 3})}});
  Spec spec = small_spec(dir, "  data: d.pt\n  loss: mse(logits, y)\n  lr_for: {vison: 0.1}\n");
  EXPECT_THROW_WITH(run(spec), "train.lr_for: no model or layer named 'vison'");
}

}  // namespace
}  // namespace stitch
