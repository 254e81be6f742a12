// Merges through the C++ API: the spec's merge: entry and stitch::load_merge
// build the same graph and the same numbers, the spec writer writes a merge
// back so that it reads the same, and refusals are stitch errors that name
// what differs. The formulas themselves are checked against Python in
// tests/python/test_merge.py.

#include <stitch/stitch.h>

#include <fstream>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;
using testing::TempDir;

class MergeTest : public testing::SeededTest {};

Graph merged_head_graph(MergeOptions options) {
  Graph g;
  auto x = g.input("image", {N, 3, 32, 32});
  auto soup = load_merge({fixture("resnet18.pt"), fixture("resnet18_b.pt")}, std::move(options))
                  .name("soup")
                  .cut("avgpool");
  auto features = flatten(soup(x));
  g.output("features", features);
  g.output("y", linear(features, 5));
  return g;
}

TEST_F(MergeTest, TheSpecEntryAndTheCppApiBuildTheSameGraphAndNumbers) {
  TempDir dir;
  const auto options = MergeOptions().method(MergeMethod::slerp).t(0.25);
  Graph from_cpp = merged_head_graph(options);
  const std::string yaml = to_spec_yaml(from_cpp);
  EXPECT_NE(yaml.find("merge: ["), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("method: slerp"), std::string::npos) << yaml;
  Spec from_yaml = parse_spec(yaml, dir / "spec.yaml");
  EXPECT_EQ(to_spec_yaml(from_yaml.graph), yaml);

  const auto image = torch::randn({2, 3, 32, 32});
  torch::NoGradGuard no_grad;
  auto a = build(from_cpp).forward({image}).toGenericDict();
  auto b = build(from_yaml.graph).forward({image}).toGenericDict();
  EXPECT_TRUE(torch::equal(a.at("y").toTensor(), b.at("y").toTensor()));

  // The component is stitch::merge's module cut at avgpool: its children
  // conv1 .. avgpool called in order.
  auto merged = merge({fixture("resnet18.pt"), fixture("resnet18_b.pt")}, options);
  merged.eval();
  torch::Tensor h = image;
  for (const auto& child : merged.named_children()) {
    torch::jit::Module layer = child.value;
    h = layer.forward({h}).toTensor();
    if (child.name == "avgpool") break;
  }
  EXPECT_TRUE(torch::allclose(a.at("features").toTensor(), h.flatten(1), 1e-5, 1e-6));
  const std::string table = stitch::check(from_cpp).table();
  EXPECT_NE(table.find("slerp merge of resnet18.pt, resnet18_b.pt"), std::string::npos) << table;
}

TEST_F(MergeTest, GlobWeightsWriteBackAsOneWeightsString) {
  TempDir dir;
  MergeOptions options;
  parse_merge_weights("fc.*=0.2,layer1.*=0.9", 2, options);
  ASSERT_EQ(options.glob_weights().size(), 2u);
  EXPECT_EQ(options.glob_weights()[0].weights, (std::vector<double>{0.2, 0.8}));
  const std::string yaml = to_spec_yaml(merged_head_graph(options));
  EXPECT_NE(yaml.find("weights: \"fc.*=0.2,layer1.*=0.9\""), std::string::npos) << yaml;
  Spec again = parse_spec(yaml, dir / "spec.yaml");
  EXPECT_EQ(to_spec_yaml(again.graph), yaml);
}

TEST_F(MergeTest, ModelsOfAnotherArchitectureAreRefusedNamingTheTensorAndBothShapes) {
  try {
    (void)merge({fixture("resnet18.pt"), fixture("mobilenet_v3_small.pt")});
    FAIL() << "merged two architectures";
  } catch (const ModelError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cannot merge mobilenet_v3_small.pt into resnet18.pt"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("fix:"), std::string::npos) << message;
  }
}

TEST_F(MergeTest, OptionsThatDoNotFitTheMethodAreErrors) {
  const std::vector<std::filesystem::path> two = {fixture("resnet18.pt"), fixture("resnet18_b.pt")};
  EXPECT_THROW((void)merge(two, MergeOptions().method(MergeMethod::ties)), Error);  // no base
  EXPECT_THROW((void)merge({two[0], two[1], two[0]}, MergeOptions().method(MergeMethod::slerp)),
               Error);
  EXPECT_THROW((void)merge(two, MergeOptions().weights({1.0})), Error);  // one weight, two models
  EXPECT_THROW((void)merge(two, MergeOptions().method(MergeMethod::dare).base(two[0]).density(0)),
               Error);
  MergeOptions options;
  EXPECT_THROW(parse_merge_weights("head.*=x", 2, options), Error);
  EXPECT_THROW(parse_merge_weights("head.*=0.5", 3, options), Error);  // ':' for three
}

TEST_F(MergeTest, AMergeAndItsFirstFileAreTwoModelsNotOne) {
  Graph g;
  auto x = g.input("image", {N, 3, 32, 32});
  auto plain = load(fixture("resnet18.pt"));
  auto merged = load_merge({fixture("resnet18.pt"), fixture("resnet18_b.pt")});
  ASSERT_EQ(plain.spec().name, merged.spec().name);  // both named after resnet18.pt
  (void)plain(x);
  EXPECT_THROW((void)merged(x), SpecError);  // declared twice, not silently the plain one
  EXPECT_THROW(merged.method("encode"), Error);
}

TEST_F(MergeTest, TheMergedModuleKeepsTheFirstModelsInterfaceAndRecordsItsSources) {
  TempDir dir;
  save(merge({fixture("mlp_a.pt"), fixture("mlp_a.pt")}), dir / "m.pt");
  const ArtifactMetadata meta = read_metadata(dir / "m.pt");
  EXPECT_TRUE(meta.spec_yaml.empty());
  EXPECT_NE(meta.manifest_json.find("\"method\": \"linear\""), std::string::npos);
  EXPECT_NE(meta.manifest_json.find("\"file\": \"mlp_a.pt\""), std::string::npos);
  // Two copies of one model average to that model.
  auto merged = torch::jit::load((dir / "m.pt").string());
  auto original = torch::jit::load(fixture("mlp_a.pt"));
  const auto x = torch::randn({4, 64});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(merged.forward({x}).toTensor(), original.forward({x}).toTensor()));
}

}  // namespace
}  // namespace stitch
