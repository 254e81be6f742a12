// Model surgery on real architectures (cut, taps, after, head swap,
// mid-network fusion) through the C++ API, each compared with the same thing
// done by hand on the original model's children.

#include <stitch/stitch.h>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;
using testing::TempDir;

class SurgeryTest : public testing::SeededTest {};

torch::jit::Module load_eval(const std::string& name) {
  auto m = torch::jit::load(fixture(name));
  m.eval();
  return m;
}

torch::jit::Module child(const torch::jit::Module& m, const std::string& path) {
  torch::jit::Module out = m;
  size_t start = 0;
  while (start <= path.size()) {
    auto dot = path.find('.', start);
    out = out.attr(path.substr(start, dot - start)).toModule();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

torch::Tensor forward(const torch::jit::Module& m, torch::Tensor x) {
  torch::NoGradGuard no_grad;
  return const_cast<torch::jit::Module&>(m).forward({x}).toTensor();
}

/// Calls the named children of `m` in order, stopping after `last`.
torch::Tensor children_until(const torch::jit::Module& m, const std::vector<std::string>& names,
                             torch::Tensor x, const std::string& last) {
  for (const auto& name : names) {
    x = forward(child(m, name), x);
    if (name == last) break;
  }
  return x;
}

const std::vector<std::string> kResnet = {"conv1",  "bn1",    "relu",   "maxpool", "layer1",
                                          "layer2", "layer3", "layer4", "avgpool"};

torch::Tensor run(torch::jit::Module& m, std::vector<c10::IValue> args) {
  torch::NoGradGuard no_grad;
  return m.forward(std::move(args)).toTensor();
}

torch::Tensor parameter(const torch::jit::Module& m, const std::string& name) {
  for (const auto& p : m.named_parameters(true)) {
    if (p.name == name) return p.value;
  }
  throw std::runtime_error("no parameter " + name);
}

TEST_F(SurgeryTest, CutAtANestedBlockEqualsTheChildrenUpToIt) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  g.output("y", load(fixture("resnet18.pt")).name("r").cut("layer4.0")(image));
  auto model = g.build();

  auto r = load_eval("resnet18.pt");
  auto x = torch::randn({2, 3, 64, 64});
  auto expected = forward(child(r, "layer4.0"), children_until(r, kResnet, x, "layer3"));
  EXPECT_TRUE(torch::allclose(run(model, {x}), expected, 1e-5, 1e-5));
  // layer4.1 and fc are not used any more: fc (top level) is dropped.
  EXPECT_FALSE(model.attr("r").toModule().hasattr("fc"));
}

TEST_F(SurgeryTest, CutMobilenetAtFeatures6EqualsSequentialOfTheFirstSeven) {
  Graph g;
  auto image = g.input("image", {N, 3, 96, 96});
  g.output("y", load(fixture("mobilenet_v3_small.pt")).name("m").cut("features.6")(image));
  auto model = g.build();

  auto m = load_eval("mobilenet_v3_small.pt");
  auto x = torch::randn({2, 3, 96, 96});
  auto expected = x;
  for (int i = 0; i <= 6; ++i)
    expected = forward(child(m, "features." + std::to_string(i)), expected);
  EXPECT_TRUE(torch::allclose(run(model, {x}), expected, 1e-5, 1e-5));
  // The layers after the cut, nested in `features`, are gone with their weights.
  auto features = model.attr("m").toModule().attr("features").toModule();
  EXPECT_TRUE(features.hasattr("6"));
  EXPECT_FALSE(features.hasattr("7"));
  EXPECT_FALSE(model.attr("m").toModule().hasattr("classifier"));
}

TEST_F(SurgeryTest, CutAndAfterAtTheSameLayerRecomposeMobilenet) {
  Graph g;
  auto image = g.input("image", {N, 3, 96, 96});
  auto low = load(fixture("mobilenet_v3_small.pt")).name("low").cut("features.6");
  auto high = load(fixture("mobilenet_v3_small.pt")).name("high").after("features.6");
  g.output("y", high(low(image)));
  auto model = g.build();

  auto m = load_eval("mobilenet_v3_small.pt");
  auto x = torch::randn({2, 3, 96, 96});
  EXPECT_TRUE(torch::allclose(run(model, {x}), forward(m, x), 1e-5, 1e-5));
  // Each half keeps only its own layers.
  auto low_features = model.attr("low").toModule().attr("features").toModule();
  auto high_features = model.attr("high").toModule().attr("features").toModule();
  EXPECT_FALSE(low_features.hasattr("7"));
  EXPECT_FALSE(high_features.hasattr("6"));
  EXPECT_TRUE(high_features.hasattr("7"));
}

TEST_F(SurgeryTest, MiddleSliceIsCutAndAfterTogether) {
  Graph g;
  auto x = g.input("x", {N, 64, 16, 16});
  g.output("y", load(fixture("resnet18.pt")).name("mid").after("layer1").cut("layer3")(x));
  auto model = g.build();

  auto r = load_eval("resnet18.pt");
  auto input = torch::randn({2, 64, 16, 16});
  auto expected = forward(child(r, "layer3"), forward(child(r, "layer2"), input));
  EXPECT_TRUE(torch::allclose(run(model, {input}), expected, 1e-5, 1e-5));
}

TEST_F(SurgeryTest, TapsReturnADictKeyedByPathInOnePass) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto feats = load(fixture("resnet18.pt")).name("r").taps({"layer2", "layer4.1", "layer4"})(image);
  g.output("a", feats["layer2"]);
  g.output("b", feats["layer4.1"]);
  g.output("c", pool(feats["layer4"], "avg"));
  auto model = g.build();

  auto r = load_eval("resnet18.pt");
  auto x = torch::randn({2, 3, 64, 64});
  torch::NoGradGuard no_grad;
  auto out = model.forward({x}).toGenericDict();
  auto layer2 = children_until(r, kResnet, x, "layer2");
  auto layer4 = children_until(r, kResnet, x, "layer4");
  EXPECT_TRUE(torch::allclose(out.at("a").toTensor(), layer2, 1e-5, 1e-5));
  // layer4.1 is layer4's last block: the same tensor.
  EXPECT_TRUE(torch::allclose(out.at("b").toTensor(), layer4, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out.at("c").toTensor(), layer4.mean({2, 3}), 1e-5, 1e-5));
}

TEST_F(SurgeryTest, TapsShowAsADictInCheck) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto feats = load(fixture("resnet18.pt")).name("r").taps({"layer3", "layer4"})(image);
  g.output("y", feats["layer3"]);
  auto report = check(g);
  const ValueType& t = report.nodes.at(feats.id()).type;
  ASSERT_EQ(t.kind, ValueType::Kind::Dict) << t.str();
  EXPECT_EQ(t.keys, (std::vector<std::string>{"layer3", "layer4"}));
  EXPECT_EQ(t.elements.at(0).str(), "float[N, 256, 4, 4]");
  EXPECT_EQ(t.elements.at(1).str(), "float[N, 512, 2, 2]");
}

TEST_F(SurgeryTest, HeadSwapOnResnetEqualsFeaturesThenANewLinear) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto backbone = load(fixture("resnet18.pt")).name("backbone").cut("avgpool").freeze();
  g.output("logits", linear(flatten(backbone(image)), 10));
  auto model = g.build();

  auto r = load_eval("resnet18.pt");
  auto x = torch::randn({3, 3, 64, 64});
  auto features = children_until(r, kResnet, x, "avgpool").flatten(1);
  auto expected =
      torch::linear(features, parameter(model, "logits.weight"), parameter(model, "logits.bias"));
  EXPECT_TRUE(torch::allclose(run(model, {x}), expected, 1e-5, 1e-5));
  EXPECT_FALSE(parameter(model, "backbone.conv1.weight").requires_grad());
  EXPECT_TRUE(parameter(model, "logits.weight").requires_grad());
}

/// Seed 002, strategy 2 corrected: resnet18 split at layer3, a depth
/// resnet18's layer4 resized to layer3's map, concat, a conv bridge.
TEST_F(SurgeryTest, MidNetworkFusionEqualsTheSameGlueByHand) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto depth_map = g.input("depth_map", {N, 3, 64, 64});
  auto rgb_low = load(fixture("resnet18.pt")).name("rgb_low").cut("layer3").freeze();
  auto rgb_high = load(fixture("resnet18.pt")).name("rgb_high").after("layer3");
  auto depth = load(fixture("resnet18_b.pt")).name("depth").taps({"layer4"});
  auto d = resize(depth(depth_map)["layer4"], {4, 4});
  auto fused = conv(concat({rgb_low(image), d}, 1), 256, 3, 1, 1);
  g.set_name(fused, "fused");
  g.output("logits", rgb_high(fused));
  TempDir dir;
  save(g.build(), dir / "fusion.pt");
  auto model = torch::jit::load((dir / "fusion.pt").string());
  model.eval();

  auto r = load_eval("resnet18.pt");
  auto b = load_eval("resnet18_b.pt");
  auto x = torch::randn({2, 3, 64, 64});
  auto dm = torch::randn({2, 3, 64, 64});
  torch::NoGradGuard no_grad;
  auto low = children_until(r, kResnet, x, "layer3");
  auto dfeat = torch::upsample_bilinear2d(children_until(b, kResnet, dm, "layer4"), {4, 4}, false);
  auto bridged = torch::conv2d(torch::cat({low, dfeat}, 1), parameter(model, "fused.weight"),
                               parameter(model, "fused.bias"), 1, 1);
  auto high = forward(child(r, "avgpool"), forward(child(r, "layer4"), bridged)).flatten(1);
  auto expected = forward(child(r, "fc"), high);
  EXPECT_TRUE(torch::allclose(run(model, {x, dm}), expected, 1e-4, 1e-5));
}

TEST_F(SurgeryTest, FusingAVectorIntoAMapIsRefusedWithBothShapes) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto depth_map = g.input("depth_map", {N, 3, 64, 64});
  auto rgb_low = load(fixture("resnet18.pt")).name("rgb_low").cut("layer3");
  auto depth = load(fixture("resnet18_b.pt")).name("depth").cut("avgpool");
  g.output("y", concat({rgb_low(image), flatten(depth(depth_map))}, 1));
  EXPECT_THROW_WITH(check(g), "float[N, 256, 4, 4]");
  EXPECT_THROW_WITH(check(g), "float[N, 512]");
}

TEST_F(SurgeryTest, PathToAParameterSaysItIsNotALayer) {
  Graph g;
  auto x = g.input("x", {N, 3, 64, 64});
  g.output("y", load(fixture("resnet18.pt")).cut("fc.weight")(x));
  EXPECT_THROW_WITH(check(g), "'fc.weight' is a parameter, not a layer");
  EXPECT_THROW_WITH(check(g), "use the module that holds it ('fc')");
}

TEST_F(SurgeryTest, UnknownNestedPathListsTheChildrenAndHowToListAll) {
  Graph g;
  auto x = g.input("x", {N, 3, 64, 64});
  g.output("y", load(fixture("mobilenet_v3_small.pt")).taps({"features.66"})(x));
  EXPECT_THROW_WITH(check(g), "has no layer 'features.66'");
  EXPECT_THROW_WITH(check(g), "features's children: 0, 1, 2");
  EXPECT_THROW_WITH(check(g), "stitch inspect mobilenet_v3_small.pt");
}

TEST_F(SurgeryTest, AfterPastTheCutSaysSoRatherThanThatTheLayerIsMissing) {
  Graph g;
  auto x = g.input("x", {N, 3, 32, 32});
  g.output("y", load(fixture("resnet18.pt")).name("mid").cut("layer1").after("layer4")(x));
  EXPECT_THROW_WITH(check(g), "after: 'layer4' is not in the part that cut: 'layer1' keeps");
  Graph h;
  auto y = h.input("x", {N, 3, 32, 32});
  h.output("y", load(fixture("resnet18.pt")).name("mid").cut("layer1").after("layer9")(y));
  EXPECT_THROW_WITH(check(h), "has no layer 'layer9'");
}

TEST_F(SurgeryTest, SkipConnectionErrorNamesTheCrossingValues) {
  Graph g;
  auto x = g.input("x", {N, 64, 16, 16});
  g.output("y", load(fixture("resnet18.pt")).name("rest").after("layer1.0.bn1")(x));
  EXPECT_THROW_WITH(check(g), "cannot start after 'layer1.0.bn1'");
  // Only the value that crosses (layer1.0's input: maxpool's output), named
  // as in the model's code (x3, not the graph's %x3.1).
  EXPECT_THROW_WITH(check(g), "also uses x3 (the output of maxpool), computed before it");
}

TEST_F(SurgeryTest, TapAfterACutCannotReachARemovedLayer) {
  Graph g;
  auto x = g.input("x", {N, 3, 64, 64});
  // resnet18 calls fc, but a cut at avgpool removes it; tapping fc after
  // cutting is a model with no call of fc.
  g.output("y", load(fixture("resnet18.pt")).cut("avgpool").taps({"fc"})(x));
  EXPECT_THROW_WITH(check(g), "has no layer 'fc'");
}

}  // namespace
}  // namespace stitch
