// Seed 001, example 3: two modules on the same input, concatenated, then (as
// in seed 003's MyComplexStack) a new Linear on top.
//   example_seed001_parallel FIXTURES_DIR

#include <stitch/stitch.h>

#include "check.h"

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : "fixtures";
  stitch::Graph g;
  auto x = g.input("x", {stitch::N, 10});
  auto m1 = stitch::load(dir + "/seed001_ex3_module1.pt").name("module1");
  auto m2 = stitch::load(dir + "/seed001_ex3_module2.pt").name("module2");
  auto both = stitch::concat({m1(x), m2(x)}, 1);
  g.output("y", stitch::linear(both, 3));
  std::cout << stitch::check(g).table();
  stitch::save(g.build(), "seed001_parallel.pt");

  auto combined = torch::jit::load("seed001_parallel.pt");
  auto a = torch::jit::load(dir + "/seed001_ex3_module1.pt");
  auto b = torch::jit::load(dir + "/seed001_ex3_module2.pt");
  torch::Tensor w, bias;
  for (const auto& p : combined.named_parameters(true)) {
    if (p.name == "y.weight") w = p.value;
    if (p.name == "y.bias") bias = p.value;
  }
  torch::NoGradGuard no_grad;
  auto input = torch::randn({4, 10});
  auto by_hand = torch::linear(
      torch::cat({a.forward({input}).toTensor(), b.forward({input}).toTensor()}, 1), w, bias);
  expect_close("seed001 parallel", combined.forward({input}).toTensor(), by_hand);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
