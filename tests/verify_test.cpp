// stitch::verify: an artifact equals running its parts; a changed weight in a
// component is caught.

#include <stitch/stitch.h>
#include <stitch/verify.h>

#include <fstream>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;
using testing::TempDir;

class VerifyTest : public testing::SeededTest {
 protected:
  /// A spec (resnet18 cut at avgpool, frozen, + a linear head) and its artifact.
  void compose() {
    std::ofstream(dir_ / "spec.yaml") << "inputs:\n"
                                         "  image: [N, 3, 32, 32]\n"
                                         "models:\n"
                                         "  vision: {file: "
                                      << fixture("resnet18.pt")
                                      << ", cut: avgpool, freeze: true}\n"
                                         "graph:\n"
                                         "  - logits = linear(flatten(vision(image)), 5)\n"
                                         "outputs: [logits]\n";
    Spec s = load_spec(dir_ / "spec.yaml");
    save(build(s.graph), dir_ / "out.pt");
  }

  /// Adds `delta` to one tensor of the saved artifact and saves it again.
  void tamper(const std::string& module_path, const std::string& name, double delta) {
    auto m = torch::jit::load((dir_ / "out.pt").string());
    torch::jit::Module owner = m;
    std::string rest = module_path;
    while (!rest.empty()) {
      auto dot = rest.find('.');
      owner = owner.attr(rest.substr(0, dot)).toModule();
      rest = dot == std::string::npos ? "" : rest.substr(dot + 1);
    }
    torch::NoGradGuard no_grad;
    owner.attr(name).toTensor().add_(delta);
    m.save((dir_ / "out.pt").string());
  }

  TempDir dir_;
};

TEST_F(VerifyTest, AnArtifactMatchesItsParts) {
  compose();
  VerifyReport r = verify(dir_ / "out.pt", dir_ / "spec.yaml");
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.outputs[0].name, "logits");
  EXPECT_EQ(r.outputs[0].shape, (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(r.outputs[0].max_abs_diff, 0.0);
}

TEST_F(VerifyTest, ATamperedComponentWeightIsCaught) {
  compose();
  tamper("vision.layer4.1.conv2", "weight", 0.05);
  EXPECT_THROW_WITH(verify(dir_ / "out.pt", dir_ / "spec.yaml"),
                    "differs from its parts: output 'logits'");
  // ... and the error names the component whose weights are not its file's.
  EXPECT_THROW_WITH(verify(dir_ / "out.pt", dir_ / "spec.yaml"),
                    "vision's weights in the artifact differ from its file's: 1 of");
}

TEST_F(VerifyTest, AnOptimizedArtifactMatchesItsParts) {
  // --optimize folds every weight into the code: the learned layers are the
  // spec's seeded ones.
  compose();
  save(fold_weights(torch::jit::load((dir_ / "out.pt").string())), dir_ / "opt.pt");
  VerifyReport r = verify(dir_ / "opt.pt", dir_ / "spec.yaml");
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("compose --optimize"), std::string::npos) << r.notes[0];
}

TEST_F(VerifyTest, ACppApiArtifactMatchesTheSpecItCarries) {
  // The C++ API and the spec name layers alike, so the stored spec rebuilds
  // the same module.
  Graph g;
  auto x = g.input("x", {N, 10});
  auto model = load(fixture("seed000_ex1_model1.pt")).name("body");
  g.output("y", linear(relu(model(x)), 3));
  g.output("z", mlp(x, {8, 2}));
  save(build(g), dir_ / "api.pt");
  std::ofstream(dir_ / "stored.yaml") << read_metadata(dir_ / "api.pt").spec_yaml;
  EXPECT_TRUE(verify(dir_ / "api.pt", dir_ / "stored.yaml").ok());
}

TEST_F(VerifyTest, LearnedLayersTakeTheirWeightsFromTheArtifact) {
  // A trained head differs from a fresh one; that is not a difference.
  compose();
  tamper("logits", "weight", 0.5);
  EXPECT_TRUE(verify(dir_ / "out.pt", dir_ / "spec.yaml").ok());
}

TEST_F(VerifyTest, AnArtifactOfAnotherSpecIsRefused) {
  compose();
  std::ofstream(dir_ / "other.yaml") << "inputs:\n  x: [N, 4]\n"
                                        "graph:\n  - y = linear(x, 3)\noutputs: [y]\n";
  EXPECT_THROW_WITH(verify(dir_ / "out.pt", dir_ / "other.yaml"), "was not built from this spec");
}

}  // namespace
}  // namespace stitch
