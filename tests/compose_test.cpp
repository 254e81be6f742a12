// Building combined models through the C++ API and checking them against the
// same components called by hand.

#include <stitch/stitch.h>
#include <torch/csrc/jit/serialization/import.h>

#include "check/analysis.h"
#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;
using testing::TempDir;

class ComposeTest : public testing::SeededTest {};

torch::Tensor call(torch::jit::Module& m, std::vector<c10::IValue> args) {
  torch::NoGradGuard no_grad;
  return m.forward(std::move(args)).toTensor();
}

torch::jit::Module load_eval(const std::string& name) {
  auto m = torch::jit::load(fixture(name));
  m.eval();
  return m;
}

/// resnet18's children up to and including `last`, called in order.
torch::Tensor resnet_prefix(torch::jit::Module& r, torch::Tensor x, const std::string& last) {
  torch::NoGradGuard no_grad;
  for (const char* name :
       {"conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"}) {
    x = r.attr(name).toModule().forward({x}).toTensor();
    if (last == name) break;
  }
  return x;
}

TEST_F(ComposeTest, ChainOfTwoModelsEqualsCallingThemInOrder) {
  Graph g;
  auto x = g.input("x", {N, 10});
  auto a = load(fixture("seed000_ex1_model1.pt"));
  auto b = load(fixture("seed000_ex1_model2.pt"));
  g.output("y", b(a(x)));
  auto model = g.build();

  auto ma = load_eval("seed000_ex1_model1.pt");
  auto mb = load_eval("seed000_ex1_model2.pt");
  for (int64_t batch : {1, 7}) {
    auto input = torch::randn({batch, 10});
    EXPECT_TRUE(torch::allclose(call(model, {input}), call(mb, {call(ma, {input})})));
  }
}

/// A graph of one copy of a fixture, in a folder the test may empty.
struct CopiedModel {
  TempDir dir;
  std::filesystem::path file = dir / "model.pt";
  CopiedModel() { std::filesystem::copy_file(fixture("seed000_ex1_model1.pt"), file); }
};

TEST_F(ComposeTest, BuildFromACheckReportUsesTheModelsCheckLoaded) {
  CopiedModel copy;
  Graph g;
  auto x = g.input("x", {N, 10});
  g.output("y", load(copy.file).name("a")(x));
  const CheckReport report = check(g);
  std::filesystem::remove(copy.file);  // the build must not read it again

  auto model = build(g, report);
  auto by_hand = load_eval("seed000_ex1_model1.pt");
  auto input = torch::randn({4, 10});
  EXPECT_TRUE(torch::allclose(call(model, {input}), call(by_hand, {input})));
  // A second build from the report checks again, which needs the file.
  EXPECT_THROW_TYPE_WITH((void)build(g, report), ModelError, "model.pt");
  EXPECT_THROW_TYPE_WITH((void)build(g), ModelError, "model.pt");
}

TEST_F(ComposeTest, BuildFromAnotherGraphsReportChecksItsOwnGraph) {
  Graph first, second;
  for (Graph* g : {&first, &second}) {
    auto x = g->input("x", {N, 10});
    g->output("y", load(fixture("seed000_ex1_model1.pt")).name("a")(x));
  }
  const CheckReport report = check(first);
  auto model = build(second, report);
  EXPECT_TRUE(take_analysis(report, first).has_value()) << "second's build took first's models";
}

TEST_F(ComposeTest, CutResnetAtAvgpoolEqualsItsChildrenInOrder) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto vision = load(fixture("resnet18.pt")).name("vision").cut("avgpool");
  g.output("features", vision(image));
  auto model = g.build();

  auto r = load_eval("resnet18.pt");
  auto input = torch::randn({3, 3, 64, 64});
  auto expected = resnet_prefix(r, input, "avgpool");
  EXPECT_EQ(expected.sizes(), (std::vector<int64_t>{3, 512, 1, 1}));
  EXPECT_TRUE(torch::allclose(call(model, {input}), expected, 1e-5, 1e-6));
  // The classifier after the cut is dropped with its parameters.
  EXPECT_FALSE(model.attr("vision").toModule().hasattr("fc"));
}

TEST_F(ComposeTest, AfterTakesTheCutOutputAndRunsTheRest) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto low = load(fixture("resnet18.pt")).name("low").cut("layer3");
  auto high = load(fixture("resnet18.pt")).name("high").after("layer3");
  g.output("logits", high(low(image)));
  auto model = g.build();

  auto r = load_eval("resnet18.pt");
  auto input = torch::randn({2, 3, 64, 64});
  EXPECT_TRUE(torch::allclose(call(model, {input}), call(r, {input}), 1e-5, 1e-5));
}

TEST_F(ComposeTest, AfterRefusesASkipConnectionAcrossTheCut) {
  Graph g;
  auto x = g.input("x", {N, 64, 8, 8});
  // Inside a BasicBlock the identity branch crosses conv1.
  auto rest = load(fixture("resnet18.pt")).name("rest").after("layer1.0.conv1");
  g.output("y", rest(x));
  EXPECT_THROW_WITH(check(g), "skip connection across the cut");
}

TEST_F(ComposeTest, UnknownLayerSuggestsTheNearestName) {
  Graph g;
  auto x = g.input("x", {N, 3, 64, 64});
  g.output("y", load(fixture("resnet18.pt")).cut("layer44")(x));
  EXPECT_THROW_WITH(check(g), "did you mean layer4?");
}

TEST_F(ComposeTest, MismatchNamesBothSidesAndTheFix) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto vision = load(fixture("resnet18.pt")).name("vision").cut("avgpool");
  auto head = load(fixture("mlp_b.pt")).name("head");
  g.output("y", head(vision(image)));
  try {
    (void)check(g);
    FAIL() << "no error";
  } catch (const ShapeError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot feed vision into head"), std::string::npos) << msg;
    EXPECT_NE(msg.find("produces float[N, 512, 1, 1]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Linear(in_features=64)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fix:"), std::string::npos) << msg;
  }
}

TEST_F(ComposeTest, FlattenFixIsSuggestedWhenSizesMatch) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto vision = load(fixture("resnet18.pt")).name("vision").cut("avgpool");
  auto head = load(fixture("head.pt")).name("head");
  // head.pt flattens first, so this composes; mlp_b-like heads would not.
  g.output("y", head(vision(image)));
  auto report = check(g);
  EXPECT_EQ(report.nodes.back().type.str(), "float[N, 5]");
}

TEST_F(ComposeTest, ReshapeKeepsTheBatchDimensionSymbolic) {
  Graph g;
  auto x = g.input("x", {N, 10});
  auto a = load(fixture("seed000_ex2_model1.pt"));
  auto b = load(fixture("seed000_ex2_model2.pt"));
  auto y = b(reshape(a(x), {-1, 3, 5}));
  g.output("y", y);
  auto report = check(g);
  EXPECT_EQ(report.nodes.at(y.id() - 1).type.str(), "float[N, 3, 5]");
  EXPECT_EQ(report.nodes.at(y.id()).type.str(), "float[N, 8, 3]");
}

TEST_F(ComposeTest, CheckRowsWriteExpressionsAsASpecDoes) {
  Graph g;
  auto a = g.input("a", {N, 4});
  auto b = g.input("b", {N, 4});
  g.output("y", linear((a - b) * 2.0, 3));
  g.output("z", a - (b - a) * 0.5);
  const auto report = check(g);
  std::vector<std::string> rows;
  for (const auto& r : report.nodes) rows.push_back(r.expression);
  // The parentheses precedence needs, required arguments positionally.
  EXPECT_NE(std::find(rows.begin(), rows.end(), "linear((a - b) * 2.0, 3)"), rows.end())
      << report.table();
  EXPECT_NE(std::find(rows.begin(), rows.end(), "a - (b - a) * 0.5"), rows.end()) << report.table();
}

TEST_F(ComposeTest, TwoResnetsWithTheSameClassNamesLiveInOneArtifact) {
  TempDir dir;
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto a = load(fixture("resnet18.pt")).name("a");
  auto b = load(fixture("resnet18_b.pt")).name("b");
  g.output("both", concat({a(image), b(image)}, 1));
  save(g.build(), dir / "two.pt");

  auto loaded = torch::jit::load((dir / "two.pt").string());
  auto ra = load_eval("resnet18.pt");
  auto rb = load_eval("resnet18_b.pt");
  auto input = torch::randn({2, 3, 64, 64});
  auto expected = torch::cat({call(ra, {input}), call(rb, {input})}, 1);
  EXPECT_TRUE(torch::allclose(call(loaded, {input}), expected, 1e-5, 1e-5));
}

TEST_F(ComposeTest, SavedArtifactCarriesSpecAndManifest) {
  TempDir dir;
  Graph g;
  auto x = g.input("x", {N, 64});
  g.output("y", load(fixture("mlp_b.pt")).name("head")(load(fixture("mlp_a.pt"))(x)));
  save(g.build(), dir / "m.pt");
  auto meta = read_metadata(dir / "m.pt");
  EXPECT_NE(meta.manifest_json.find("\"sha256\""), std::string::npos);
  EXPECT_NE(meta.manifest_json.find("mlp_b.pt"), std::string::npos);
  EXPECT_NE(meta.spec_yaml.find("head"), std::string::npos);
}

TEST_F(ComposeTest, SeveralOutputsReturnADictKeyedByName) {
  Graph g;
  auto x = g.input("x", {N, 64});
  auto h = load(fixture("mlp_a.pt"))(x);
  g.output("hidden", h);
  g.output("probs", softmax(linear(h, 3), 1));
  auto model = g.build();
  torch::NoGradGuard no_grad;
  auto out = model.forward({torch::randn({4, 64})}).toGenericDict();
  EXPECT_EQ(out.size(), 2u);
  auto probs = out.at("probs").toTensor();
  EXPECT_TRUE(torch::allclose(probs.sum(1), torch::ones({4})));
}

TEST_F(ComposeTest, FrozenModelsStopTrainingTheirParameters) {
  Graph g;
  auto x = g.input("x", {N, 64});
  auto a = load(fixture("mlp_a.pt")).name("a").freeze();
  g.output("y", linear(a(x), 2));
  auto model = g.build();
  for (const auto& p : model.named_parameters(true)) {
    EXPECT_EQ(p.value.requires_grad(), p.name.rfind("a.", 0) != 0) << p.name;
  }
}

TEST_F(ComposeTest, FreezeGlobThatMatchesNothingIsAnError) {
  Graph g;
  auto x = g.input("x", {N, 64});
  g.output("y", load(fixture("mlp_a.pt")).name("a").freeze({"nothing.*"})(x));
  EXPECT_THROW_WITH(g.build(), "freeze pattern 'nothing.*' matches no parameter");
}

TEST_F(ComposeTest, ConcatOfDifferentRanksIsRefusedWithBothShapes) {
  Graph g;
  auto a = g.input("a", {N, 5});
  auto b = g.input("b", {N, 3, 2});
  g.output("y", concat({a, b}, 1));
  EXPECT_THROW_WITH(check(g), "a is float[N, 5]");
  EXPECT_THROW_WITH(check(g), "b is float[N, 3, 2]");
  EXPECT_THROW_WITH(check(g), "fix: flatten(b)");
}

TEST_F(ComposeTest, LinearOnTokenIdsSuggestsEmbedding) {
  Graph g;
  auto tokens = g.input("tokens", {N, 32}, at::kLong);
  g.output("y", linear(tokens, 4));
  EXPECT_THROW_WITH(check(g), "embedding(tokens");
}

TEST_F(ComposeTest, CorruptAndMissingModelFilesAreModelErrors) {
  for (const char* name : {"corrupt.pt", "truncated.pt", "empty.pt", "missing.pt"}) {
    Graph g;
    auto x = g.input("x", {N, 4});
    g.output("y", load(fixture(name))(x));
    EXPECT_THROW_WITH(check(g), name);
  }
}

TEST_F(ComposeTest, SaveIntoAMissingFolderLeavesNothingBehind) {
  TempDir dir;
  Graph g;
  auto x = g.input("x", {N, 64});
  g.output("y", relu(x));
  auto model = g.build();
  EXPECT_THROW_WITH(save(model, dir / "no" / "such" / "m.pt"), "does not exist");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST_F(ComposeTest, LearnedLayersMatchTheirTorchEquivalents) {
  Graph g;
  auto x = g.input("x", {N, 3, 8, 8});
  auto c = conv(x, 4, 3, 1, 1);
  auto n = batchnorm(layernorm(c));
  g.output("y", scale_offset(n, 2.0, 1.0));
  auto model = g.build();
  auto p = [&](const std::string& name) {
    for (const auto& t : model.named_parameters(true)) {
      if (t.name == name) return t.value;
    }
    throw std::runtime_error("no parameter " + name);
  };
  torch::NoGradGuard no_grad;
  auto input = torch::randn({2, 3, 8, 8});
  auto expected = torch::conv2d(input, p("y_conv.weight"), p("y_conv.bias"), 1, 1);
  expected = torch::layer_norm(expected, {8});
  expected = torch::batch_norm(expected, {}, {}, torch::zeros({4}), torch::ones({4}), false, 0.1,
                               1e-5, false);
  expected = expected * 2.0 + 1.0;
  EXPECT_TRUE(torch::allclose(call(model, {input}), expected, 1e-5, 1e-5));
}

}  // namespace
}  // namespace stitch
