// stitch::inspect_module / inspect_graph: rows, output shapes, parameter
// counts, freeze, depth, JSON.

#include <stitch/inspect.h>
#include <stitch/stitch.h>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;

class InspectTest : public testing::SeededTest {};

const ModuleRow& row(const InspectReport& r, const std::string& path) {
  for (const auto& m : r.modules) {
    if (m.path == path) return m;
  }
  throw std::runtime_error("no row " + path);
}

TEST_F(InspectTest, ResnetRowsHaveTypesShapesAndParameters) {
  auto m = torch::jit::load(fixture("resnet18.pt"));
  auto report = inspect_module(m, {torch::randn({1, 3, 224, 224})});
  EXPECT_EQ(row(report, "conv1").type, "Conv2d");
  EXPECT_EQ(row(report, "conv1").output->str(), "float[1, 64, 112, 112]");
  EXPECT_EQ(row(report, "conv1").parameters, 64 * 3 * 7 * 7);
  EXPECT_EQ(row(report, "layer4").output->str(), "float[1, 512, 7, 7]");
  EXPECT_EQ(row(report, "layer4.1.conv2").type, "Conv2d");
  EXPECT_EQ(row(report, "layer4.1.conv2").depth, 3);
  EXPECT_EQ(row(report, "layer4.1.conv2").output->str(), "float[1, 512, 7, 7]");
  EXPECT_EQ(row(report, "fc").output->str(), "float[1, 1000]");
  EXPECT_EQ(report.output->str(), "float[1, 1000]");
  EXPECT_EQ(report.parameters, 11689512);
  EXPECT_EQ(report.trainable, 11689512);
  EXPECT_EQ(row(report, "fc").training(), "trainable");
  EXPECT_NE(report.table().find("total parameters: 11,689,512"), std::string::npos)
      << report.table();
}

TEST_F(InspectTest, DepthLimitsTheNesting) {
  auto m = torch::jit::load(fixture("resnet18.pt"));
  auto report = inspect_module(m, {torch::randn({1, 3, 64, 64})}, 1);
  for (const auto& r : report.modules) EXPECT_EQ(r.depth, 1) << r.path;
  EXPECT_EQ(report.modules.size(), 10u);  // conv1 ... fc
  EXPECT_EQ(row(report, "layer2").output->str(), "float[1, 128, 8, 8]");
}

TEST_F(InspectTest, WithoutInputsRowsHaveNoShapes) {
  auto m = torch::jit::load(fixture("mobilenet_v3_small.pt"));
  auto report = inspect_module(m, {}, 2);
  EXPECT_FALSE(row(report, "features.0").output.has_value());
  EXPECT_EQ(row(report, "features.0").type, "Conv2dNormActivation");
}

TEST_F(InspectTest, JsonHasTheSameRows) {
  auto m = torch::jit::load(fixture("mlp_a.pt"));
  auto report = inspect_module(m, {torch::randn({2, 64})});
  const std::string json = report.json();
  EXPECT_NE(json.find("\"path\": \"0\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"type\": \"Linear\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"output\": \"float[2, 64]\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"parameters\": 4160"), std::string::npos) << json;
}

TEST_F(InspectTest, GraphShowsModelsWithFreezeAndNodes) {
  Graph g;
  auto image = g.input("image", {N, 3, 64, 64});
  auto vision =
      load(fixture("resnet18.pt")).name("vision").cut("avgpool").freeze({"conv1.*", "layer1.*"});
  auto logits = linear(flatten(vision(image)), 5);
  g.set_name(logits, "logits");
  g.output("logits", logits);
  auto report = inspect_graph(g);
  EXPECT_EQ(row(report, "vision").output->str(), "float[1, 512, 1, 1]");
  EXPECT_EQ(row(report, "vision.conv1").training(), "frozen");
  EXPECT_EQ(row(report, "vision.layer1").training(), "frozen");
  EXPECT_EQ(row(report, "vision.layer2").training(), "trainable");
  EXPECT_EQ(row(report, "vision").training(), "partly frozen");
  EXPECT_EQ(row(report, "vision.layer3").output->str(), "float[1, 256, 4, 4]");
  EXPECT_FALSE(report.modules.end() !=
               std::find_if(report.modules.begin(), report.modules.end(),
                            [](const ModuleRow& r) { return r.path == "vision.fc"; }));
  ASSERT_FALSE(report.nodes.empty());
  EXPECT_EQ(report.nodes.back().name, "logits");
  EXPECT_EQ(report.nodes.back().type.str(), "float[N, 5]");
}

TEST_F(InspectTest, BuiltInLayersAreRowsAndCountInTheTotals) {
  Graph g;
  auto x = g.input("x", {N, 64});
  auto encoder = load(fixture("mlp_a.pt")).name("encoder");  // Linear(64, 64)
  auto h = linear(encoder(x), 32);
  g.set_name(h, "h");
  auto y = linear(relu(h), 3, false);
  g.set_name(y, "y");
  g.output("y", y);
  auto report = inspect_graph(g);
  EXPECT_EQ(row(report, "h").type, "Linear");
  EXPECT_EQ(row(report, "h").parameters, 64 * 32 + 32);
  EXPECT_EQ(row(report, "h").training(), "trainable");
  EXPECT_EQ(row(report, "h").output->str(), "float[1, 32]");  // N=1, like the models' rows
  EXPECT_EQ(row(report, "y").parameters, 32 * 3);
  EXPECT_EQ(report.parameters, 64 * 64 + 64 + 64 * 32 + 32 + 32 * 3);
  EXPECT_EQ(report.trainable, report.parameters);
  EXPECT_EQ(report.output->str(), "float[N, 3]");  // the spec's one output
  // The same count as the module compose builds.
  int64_t built = 0;
  for (const auto& p : g.build().parameters()) built += p.numel();
  EXPECT_EQ(report.parameters, built);
}

TEST_F(InspectTest, GraphTakesInputSizesForItsSymbols) {
  Graph g;
  auto x = g.input("x", {N, 64});
  auto y = linear(load(fixture("mlp_a.pt")).name("encoder")(x), 3);
  g.set_name(y, "y");
  g.output("y", y);
  auto report = inspect_graph(g, -1, {{"x", {4, 64}}});
  EXPECT_EQ(row(report, "encoder").output->str(), "float[4, 64]");
  EXPECT_EQ(report.nodes.back().type.str(), "float[4, 3]");
  EXPECT_EQ(report.inputs.at(0).second.str(), "float[4, 64]");
  EXPECT_THROW_TYPE_WITH(
      inspect_graph(g, -1, {{"x", {4, 65}}}), ShapeError,
      "input 'x' is declared [N, 64], the size given is 4x65: dim 1 is 64, not 65");
  EXPECT_THROW_TYPE_WITH(inspect_graph(g, -1, {{"x", {4}}}), ShapeError, "1 dims, not 2");
  EXPECT_THROW_TYPE_WITH(inspect_graph(g, -1, {{"image", {4, 64}}}), Error,
                         "the spec has no input 'image'; its inputs are: x");
}

}  // namespace
}  // namespace stitch
