// Seed 000: example 2 (a reshape between a Linear and a Conv1d model) and
// example 3's shape bug, refused before anything runs, then fixed.
//   example_seed000_chain_and_bug FIXTURES_DIR

#include <stitch/stitch.h>

#include "check.h"

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : "fixtures";
  {
    stitch::Graph g;
    auto x = g.input("x", {stitch::N, 10});
    auto m1 = stitch::load(dir + "/seed000_ex2_model1.pt").name("model1");
    auto m2 = stitch::load(dir + "/seed000_ex2_model2.pt").name("model2");
    g.output("y", m2(stitch::reshape(m1(x), {-1, 3, 5})));
    auto model = g.build();
    auto a = torch::jit::load(dir + "/seed000_ex2_model1.pt");
    auto b = torch::jit::load(dir + "/seed000_ex2_model2.pt");
    torch::NoGradGuard no_grad;
    auto input = torch::randn({2, 10});
    expect_close("seed000 ex2", model.forward({input}).toTensor(),
                 b.forward({a.forward({input}).toTensor().reshape({-1, 3, 5})}).toTensor());
  }
  {
    stitch::Graph g;
    auto x = g.input("x", {stitch::N, 3, 24, 24});
    auto features = stitch::load(dir + "/seed000_ex3_model1.pt").name("model1");
    auto classifier = stitch::load(dir + "/seed000_ex3_model2.pt").name("model2");
    g.output("y", classifier(features(x)));
    try {
      const auto report = stitch::check(g);
      std::cerr << "the seed's shape bug was not caught:\n" << report.table();
      return 1;
    } catch (const stitch::ShapeError& e) {
      std::cout << "seed000 ex3 as written is refused:\n" << e.what() << "\n";
    }
  }
  {
    stitch::Graph g;
    auto x = g.input("x", {stitch::N, 3, 24, 24});
    auto features = stitch::load(dir + "/seed000_ex3_model1.pt").name("model1");
    auto classifier = stitch::load(dir + "/seed000_ex3_model2_fixed.pt").name("model2");
    g.output("y", classifier(features(x)));
    auto model = g.build();
    auto a = torch::jit::load(dir + "/seed000_ex3_model1.pt");
    auto b = torch::jit::load(dir + "/seed000_ex3_model2_fixed.pt");
    torch::NoGradGuard no_grad;
    auto input = torch::randn({2, 3, 24, 24});
    expect_close("seed000 ex3 fixed", model.forward({input}).toTensor(),
                 b.forward({a.forward({input}).toTensor()}).toTensor());
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
