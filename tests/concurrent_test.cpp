// Concurrent branches: independent model calls forked (TorchScript
// fork/wait) give the same numbers as the plain build, after save + load,
// after fold_weights, and in training (gradients).

#include <stitch/stitch.h>

#include <cstdlib>
#include <map>

#include "build/schedule.h"
#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;
using testing::TempDir;

class ConcurrentTest : public testing::SeededTest {};

/// Seed 001, example 3: two modules on the same input, concatenated.
void parallel(Graph& g) {
  auto x = g.input("x", {N, 10});
  auto m1 = load(fixture("seed001_ex3_module1.pt")).name("module1");
  auto m2 = load(fixture("seed001_ex3_module2.pt")).name("module2");
  g.output("y", linear(concat({m1(x), m2(x)}, 1), 3));
}

std::vector<Step::Kind> kinds(const std::vector<Step>& steps) {
  std::vector<Step::Kind> out;
  for (const auto& s : steps) out.push_back(s.kind);
  return out;
}

bool has_fork(const torch::jit::Module& m) {
  const auto graph = m.get_method("forward").graph()->toString();
  return graph.find("prim::fork") != std::string::npos;
}

torch::Tensor run(const torch::jit::Module& m, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return m.get_method("forward")({x}).toTensor();
}

TEST_F(ConcurrentTest, ForksEveryIndependentCallButTheLast) {
  Graph g;
  parallel(g);
  using K = Step::Kind;
  // module1 forked, module2 inline, wait, then concat and linear.
  EXPECT_EQ(kinds(schedule(g, simplify(g), true)),
            (std::vector<K>{K::Fork, K::Run, K::Wait, K::Run, K::Run}));
  EXPECT_EQ(kinds(schedule(g, simplify(g), false)),
            (std::vector<K>{K::Run, K::Run, K::Run, K::Run}));
}

TEST_F(ConcurrentTest, TheHeaviestCallRunsInlineAndTheLighterOnesAreForked) {
  // Late fusion: a large model beside a small one. The small one is forked,
  // the large one keeps the calling thread (and its intra-op threads).
  Graph g;
  auto x = g.input("x", {N, 10});
  auto m1 = load(fixture("seed001_ex3_module1.pt")).name("module1");
  auto m2 = load(fixture("seed001_ex3_module2.pt")).name("module2");
  g.output("y", concat({m1(x), m2(x)}, 1));
  const int call1 = 1, call2 = 2;  // after the input x
  ASSERT_EQ(g.nodes()[call1].op, "module1");
  using K = Step::Kind;
  auto heavy_first = schedule(g, simplify(g), true, {{"module1", 1000}, {"module2", 10}});
  ASSERT_EQ(kinds(heavy_first), (std::vector<K>{K::Fork, K::Run, K::Wait, K::Run}));
  EXPECT_EQ(heavy_first[0].node, call2);
  EXPECT_EQ(heavy_first[1].node, call1);
  auto heavy_last = schedule(g, simplify(g), true, {{"module1", 10}, {"module2", 1000}});
  EXPECT_EQ(heavy_last[0].node, call1);
  EXPECT_EQ(heavy_last[1].node, call2);
}

TEST_F(ConcurrentTest, AChainHasNothingToFork) {
  Graph g;
  auto x = g.input("x", {N, 10});
  auto a = load(fixture("seed000_ex1_model1.pt"));
  auto b = load(fixture("seed000_ex1_model2.pt"));
  g.output("y", b(a(x)));
  for (const auto& step : schedule(g, simplify(g), true)) EXPECT_EQ(step.kind, Step::Kind::Run);
}

TEST_F(ConcurrentTest, ForkedBuildGivesTheSameNumbersSavedAndLoaded) {
  Graph g;
  parallel(g);
  auto plain = build(g);
  auto forked = build(g, BuildOptions().concurrent(true));
  EXPECT_FALSE(has_fork(plain));
  ASSERT_TRUE(has_fork(forked));
  TempDir dir;
  save(forked, dir / "forked.pt");
  auto loaded = torch::jit::load((dir / "forked.pt").string());
  EXPECT_TRUE(has_fork(loaded));
  auto x = torch::randn({4, 10});
  const auto expected = run(plain, x);
  EXPECT_TRUE(torch::allclose(run(forked, x), expected));
  EXPECT_TRUE(torch::allclose(run(loaded, x), expected));
}

TEST_F(ConcurrentTest, FoldWeightsWorksOnAForkedGraph) {
  Graph g;
  parallel(g);
  auto forked = build(g, BuildOptions().concurrent(true));
  auto folded = fold_weights(forked);
  auto x = torch::randn({2, 10});
  EXPECT_TRUE(torch::allclose(run(folded, x), run(build(g), x), 1e-5, 1e-6));
}

TEST_F(ConcurrentTest, ForkedBranchesBackpropagate) {
  Graph g;
  parallel(g);
  auto plain = build(g, BuildOptions().training(true));
  auto forked = build(g, BuildOptions().training(true).concurrent(true));
  auto x = torch::randn({4, 10});
  for (auto* m : {&plain, &forked}) m->forward({x}).toTensor().square().sum().backward();
  std::map<std::string, torch::Tensor> expected;
  for (const auto& p : plain.named_parameters()) expected[p.name] = p.value.grad();
  ASSERT_FALSE(expected.empty());
  for (const auto& p : forked.named_parameters()) {
    ASSERT_TRUE(p.value.grad().defined()) << p.name;
    EXPECT_TRUE(torch::allclose(p.value.grad(), expected.at(p.name), 1e-5, 1e-6)) << p.name;
  }
}

}  // namespace
}  // namespace stitch
