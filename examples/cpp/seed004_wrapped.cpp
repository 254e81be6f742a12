// Seed 004: WrappedModel (a scale-and-offset preprocessor in front of a
// classifier) and WrappedCNN (a head swap: MockCNN's features + a new head).
//   example_seed004_wrapped FIXTURES_DIR

#include <stitch/stitch.h>

#include "check.h"

namespace {

void wrapped_model(const std::string& dir) {
  stitch::Graph g;
  auto x = g.input("x", {stitch::N, 10});
  auto classifier = stitch::load(dir + "/seed004_linear_classifier.pt").name("classifier");
  g.output("y", classifier(stitch::scale_offset(x, 2.0, 1.0)));
  auto model = g.build();

  auto c = torch::jit::load(dir + "/seed004_linear_classifier.pt");
  torch::NoGradGuard no_grad;
  auto input = torch::randn({3, 10});
  expect_close("seed004 WrappedModel", model.forward({input}).toTensor(),
               c.forward({input * 2.0 + 1.0}).toTensor());
}

void wrapped_cnn(const std::string& dir) {
  stitch::Graph g;
  auto x = g.input("x", {stitch::N, 100});
  auto features = stitch::load(dir + "/seed004_mockcnn.pt").name("cnn").cut("features");
  auto head = stitch::load(dir + "/seed004_custom_classifier.pt").name("head");
  g.output("y", head(features(x)));
  std::cout << stitch::check(g).table();
  stitch::save(g.build(), "seed004_wrapped_cnn.pt");

  auto model = torch::jit::load("seed004_wrapped_cnn.pt");
  auto cnn = torch::jit::load(dir + "/seed004_mockcnn.pt");
  auto custom = torch::jit::load(dir + "/seed004_custom_classifier.pt");
  torch::NoGradGuard no_grad;
  auto input = torch::randn({5, 100});
  auto feats = cnn.attr("features").toModule().forward({input}).toTensor();
  expect_close("seed004 WrappedCNN (head swap)", model.forward({input}).toTensor(),
               custom.forward({feats}).toTensor());
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : "fixtures";
  wrapped_model(dir);
  wrapped_cnn(dir);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
