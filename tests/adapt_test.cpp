// adapt(x, to=...) / adapt(x, like=...): the adapter chosen for each shape,
// and the fixes shape mismatches carry.

#include <stitch/stitch.h>

#include "check/adapt_target.h"
#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;

class AdaptTest : public testing::SeededTest {};

const Dim H = Dim::symbol("H");

AdaptTarget to(Shape shape) {
  AdaptTarget t;
  t.shape = std::move(shape);
  return t;
}

AdapterPlan plan(Shape from, const AdaptTarget& target, at::ScalarType dtype = at::kFloat) {
  auto p = plan_adapter(ValueType::tensor(std::move(from), dtype), target);
  if (!p) throw std::runtime_error("no plan");
  return *p;
}

std::string ops(const AdapterPlan& p) {
  return p.spec_text("x");
}

TEST_F(AdaptTest, NothingWhenTheShapeAlreadyFits) {
  auto p = plan({N, 5}, to({N, 5}));
  EXPECT_TRUE(p.steps.empty());
  EXPECT_EQ(p.note(), "adapt: [N, 5] fits as it is");
}

TEST_F(AdaptTest, FlattenDropsTrailingSizeOneDims) {
  EXPECT_EQ(ops(plan({N, 512, 1, 1}, to({N, 512}))), "flatten(x)");
  EXPECT_EQ(ops(plan({N, 16, 11, 11}, to({N, 1936}))), "flatten(x)");
}

TEST_F(AdaptTest, GlobalPoolingForAFeatureMapIntoAVector) {
  auto p = plan({N, 512, 7, 7}, to({N, 512}));
  EXPECT_EQ(ops(p), "pool(x, \"avg\")");
  EXPECT_EQ(p.note(), "adapt: [N, 512, 7, 7] -> [N, 512] by global average pooling");
  EXPECT_FALSE(p.learned());
}

TEST_F(AdaptTest, PermuteBeforeReshapeWhenTheSizesAreTheSame) {
  EXPECT_EQ(ops(plan({N, 10, 3}, to({N, 3, 10}))), "permute(x, [0, 2, 1])");
  EXPECT_EQ(ops(plan({N, 12}, to({N, 3, 4}))), "reshape(x, [-1, 3, 4])");
}

TEST_F(AdaptTest, ResizeForAnotherSpatialSize) {
  EXPECT_EQ(ops(plan({N, 3, 32, 32}, to({N, 3, 64, 64}))), "resize(x, [64, 64])");
  // Names the source does not have match any size.
  EXPECT_TRUE(plan({N, 3, 32, 32}, to({N, 3, H, Dim::symbol("W")})).steps.empty());
}

TEST_F(AdaptTest, LearnedProjectionOnlyWhenNothingElseFits) {
  auto p = plan({N, 2048}, to({N, 512}));
  EXPECT_EQ(ops(p), "linear(x, 512)");
  EXPECT_TRUE(p.learned());
  EXPECT_EQ(ops(plan({N, 64, 8, 8}, to({N, 128, 8, 8}))), "conv(x, 128)");
  EXPECT_EQ(ops(plan({N, 2048, 7, 7}, to({N, 512}))), "linear(pool(x, \"avg\"), 512)");
  EXPECT_EQ(plan({N, 2048, 7, 7}, to({N, 512})).note(),
            "adapt: [N, 2048, 7, 7] -> [N, 512] by global average pooling, then a learned "
            "projection Linear(2048 -> 512)");
}

TEST_F(AdaptTest, AModelThatFlattensGetsAResizedMapNotAProjection) {
  // seed 000 example 3: [N, 16, 11, 11] into a model that flattens to 2304.
  Expectation e{"1", "Linear(in_features=2304)", {N, 2304}, true};
  auto p = plan({N, 16, 11, 11}, target_from_expectation(e, "model2"));
  EXPECT_EQ(ops(p), "resize(x, [12, 12])");
}

TEST_F(AdaptTest, IntegerTensorsGetNoInterpolationOrProjection) {
  EXPECT_FALSE(plan_adapter(ValueType::tensor({N, 7}, at::kLong), to({N, 5})));
  EXPECT_EQ(ops(plan({N, 7, 1}, to({N, 7}), at::kLong)), "flatten(x)");
}

TEST_F(AdaptTest, AdaptToAShapeShowsTheChoiceInCheck) {
  Graph g;
  auto x = g.input("x", {N, 512, 7, 7});
  auto y = adapt(x, {N, 512});
  g.output("y", y);
  CheckReport r = check(g);
  EXPECT_EQ(r.nodes.back().note, "adapt: [N, 512, 7, 7] -> [N, 512] by global average pooling");
  EXPECT_EQ(r.nodes.back().type.str(), "float[N, 512]");

  auto model = g.build();
  torch::NoGradGuard no_grad;
  auto input = torch::randn({2, 512, 7, 7});
  EXPECT_TRUE(torch::allclose(model.forward({input}).toTensor(), input.mean({2, 3})));
}

TEST_F(AdaptTest, LikeAModelReadsItsFirstLayerAndRuns) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto vision = load(fixture("resnet18.pt")).name("vision").cut("layer4");
  auto head = load(fixture("head.pt")).name("head");  // Flatten, Linear(512, 5)
  auto features = vision(image);                      // [N, 512, 2, 2]
  auto adapted = adapt(features, head);
  g.output("logits", head(adapted));
  CheckReport r = check(g);
  bool found = false;
  for (const auto& n : r.nodes) {
    found = found || n.note == "adapt: [N, 512, 2, 2] -> [N, 512] by global average pooling";
  }
  EXPECT_TRUE(found) << r.table();

  auto model = g.build();
  auto v = torch::jit::load(fixture("resnet18.pt"));
  auto h = torch::jit::load(fixture("head.pt"));
  v.eval();
  h.eval();
  torch::NoGradGuard no_grad;
  auto input = torch::randn({2, 3, 64, 64});
  auto x = input;
  for (const char* name :
       {"conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"}) {
    x = v.attr(name).toModule().forward({x}).toTensor();
  }
  auto expected = h.forward({x.mean({2, 3})}).toTensor();
  EXPECT_TRUE(torch::allclose(model.forward({input}).toTensor(), expected, 1e-5, 1e-5));
}

TEST_F(AdaptTest, TheCppHelperWritesWhatTheSpecSays) {
  Graph g;
  auto x = g.input("x", {N, 20});
  auto y = adapt(x, {N, 8});
  g.set_name(y, "y");
  g.output("y", y);
  const auto& node = g.nodes().back();
  ASSERT_NE(node.kwarg("to"), nullptr);
  EXPECT_EQ(node.kwarg("to")->str(), R"(["N", 8])");
  EXPECT_NE(to_spec_yaml(g).find("y = adapt(x, to=[N, 8])"), std::string::npos) << to_spec_yaml(g);
}

TEST_F(AdaptTest, LearnedAdapterIsATrainableSubmodule) {
  Graph g;
  auto x = g.input("x", {N, 20});
  auto y = g.op("adapt", {x}, {{"to", Literal(std::vector<Literal>{"N", int64_t{8}})}});
  g.set_name(y, "y");
  g.output("y", y);
  auto model = g.build();
  ASSERT_TRUE(model.hasattr("y"));  // named like other layers: by statement
  auto w = model.attr("y").toModule().attr("weight").toTensor();
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{8, 20}));
  EXPECT_TRUE(w.requires_grad());
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model.forward({torch::randn({3, 20})}).toTensor().sizes(),
            (std::vector<int64_t>{3, 8}));
}

TEST_F(AdaptTest, AdaptNeedsExactlyOneTarget) {
  Graph g;
  auto x = g.input("x", {N, 20});
  g.output("y", g.op("adapt", {x}));
  EXPECT_THROW_WITH(check(g), "exactly one of to=SHAPE and like=MODEL");
}

TEST_F(AdaptTest, NoAdapterForTokenIdsSaysWhy) {
  Graph g;
  auto x = g.input("x", {N, 7}, at::kLong);
  g.output("y", g.op("adapt", {x}, {{"to", Literal(std::vector<Literal>{"N", int64_t{5}})}}));
  EXPECT_THROW_WITH(check(g), "fix: embedding(x, VOCAB, DIM)");
}

TEST_F(AdaptTest, MismatchBetweenModelsCarriesAFixThatComposes) {
  // seed 000 example 3 as written: 1936 features into a Linear(2304).
  Graph g;
  auto x = g.input("x", {N, 3, 24, 24});
  auto m1 = load(fixture("seed000_ex3_model1.pt")).name("model1");
  auto m2 = load(fixture("seed000_ex3_model2.pt")).name("model2");
  g.output("y", m2(m1(x)));
  EXPECT_THROW_WITH(check(g),
                    "fix: resize(model1(x), [12, 12])   or   adapt(model1(x), like=model2)");
}

TEST_F(AdaptTest, MismatchIntoALinearModelSuggestsFlatten) {
  // seed 002 strategy 1: resnet's [N, 512, 1, 1] into a model starting with
  // Linear(512) (mlp_b is Linear(64, 10): the same with 64).
  Graph g;
  auto image = g.input("image", {N, 3, 32, 32});
  auto vision = load(fixture("resnet18.pt")).name("vision").cut("avgpool");
  auto a = load(fixture("mlp_b.pt")).name("head");
  g.output("y", a(vision(image)));
  EXPECT_THROW_WITH(check(g), "fix: linear(flatten(vision(image)), 64)");
}

}  // namespace
}  // namespace stitch
