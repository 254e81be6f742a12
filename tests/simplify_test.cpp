// What build leaves out and computes once (check/simplify.h): entries no
// output needs are not run, the same call on the same values runs once, and
// layers with weights of their own or random ops are never shared.

#include "check/simplify.h"

#include <stitch/stitch.h>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;

class SimplifyTest : public testing::SeededTest {};

/// How many times forward reads the submodule `name` (one per call).
size_t calls_of(const torch::jit::Module& m, const std::string& name) {
  const std::string graph = m.get_method("forward").graph()->toString();
  const std::string needle = "prim::GetAttr[name=\"" + name + "\"]";
  size_t count = 0;
  for (size_t at = graph.find(needle); at != std::string::npos; at = graph.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

torch::Tensor call(torch::jit::Module& m, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return m.forward({x}).toTensor();
}

TEST_F(SimplifyTest, AnEntryNoOutputUsesIsNotBuiltAndCheckSaysSo) {
  Graph g;
  auto x = g.input("x", {N, 10});
  auto a = load(fixture("seed000_ex1_model1.pt")).name("a");
  auto b = load(fixture("seed000_ex1_model2.pt")).name("b");
  g.output("y", a(x));
  g.set_name(linear(b(a(x)), 3), "z");
  const CheckReport report = check(g);
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].find("z = linear(b(a(x)), 3"), std::string::npos) << report.notes[0];
  EXPECT_NE(report.table().find("note: z = linear("), std::string::npos);

  auto model = build(g, report);
  EXPECT_EQ(calls_of(model, "a"), 1u);
  EXPECT_EQ(calls_of(model, "b"), 0u);
  EXPECT_FALSE(model.hasattr("z")) << "no layer for an unused entry";
  auto by_hand = torch::jit::load(fixture("seed000_ex1_model1.pt"));
  by_hand.eval();
  const auto input = torch::randn({4, 10});
  EXPECT_TRUE(torch::allclose(call(model, input), call(by_hand, input)));
}

TEST_F(SimplifyTest, TheSameCallOnTheSameValuesRunsOnce) {
  Graph g;
  auto x = g.input("x", {N, 10});
  auto a = load(fixture("seed000_ex1_model1.pt")).name("a");
  auto b = load(fixture("seed000_ex1_model2.pt")).name("b");
  g.output("y1", b(relu(a(x))));
  g.output("y2", relu(a(x)) * 2.0);
  const CheckReport report = check(g);
  ASSERT_EQ(report.notes.size(), 1u) << report.table();
  EXPECT_NE(report.notes[0].find("relu(a(x)) is written 2 times (in y1, y2): computed once"),
            std::string::npos)
      << report.notes[0];

  auto model = build(g, report);
  EXPECT_EQ(calls_of(model, "a"), 1u);
  auto ma = torch::jit::load(fixture("seed000_ex1_model1.pt"));
  auto mb = torch::jit::load(fixture("seed000_ex1_model2.pt"));
  ma.eval();
  mb.eval();
  torch::NoGradGuard no_grad;
  const auto input = torch::randn({3, 10});
  const auto out = model.forward({input}).toGenericDict();
  const auto hidden = torch::relu(call(ma, input));
  EXPECT_TRUE(torch::allclose(out.at("y1").toTensor(), call(mb, hidden)));
  EXPECT_TRUE(torch::allclose(out.at("y2").toTensor(), hidden * 2.0));
}

TEST_F(SimplifyTest, LayersAndDropoutsAreNeverTheSame) {
  Graph g;
  auto x = g.input("x", {N, 10});
  g.output("a", linear(x, 4));
  g.output("b", linear(x, 4));
  g.output("c", dropout(x, 0.5));
  g.output("d", dropout(x, 0.5));
  const Simplification s = simplify(g);
  for (size_t id = 0; id < g.nodes().size(); ++id) EXPECT_EQ(s.same_as[id], int(id));
  EXPECT_TRUE(check(g).notes.empty());
  auto model = build(g);
  EXPECT_FALSE(torch::equal(model.attr("a").toModule().attr("weight").toTensor(),
                            model.attr("b").toModule().attr("weight").toTensor()));
}

TEST_F(SimplifyTest, AnUnusedInputStaysAnArgumentWithANote) {
  Graph g;
  auto x = g.input("x", {N, 4});
  g.input("mask", {N, 4});
  g.output("y", relu(x));
  const CheckReport report = check(g);
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_EQ(report.notes[0], "input 'mask' is used by no output");
  auto model = build(g);
  torch::NoGradGuard no_grad;
  const auto input = torch::randn({2, 4});
  EXPECT_TRUE(
      torch::equal(model.forward({input, torch::zeros({2, 4})}).toTensor(), torch::relu(input)));
}

TEST_F(SimplifyTest, AnUnusedEntryComputedForItsRepeatIsNotCalledLeftOut) {
  // a = m(x) is no output, b = m(x) is: m runs once, as a, and only the
  // repeat is noted.
  Graph g;
  auto x = g.input("x", {N, 10});
  auto m = load(fixture("seed000_ex1_model1.pt")).name("m");
  g.set_name(m(x), "a");
  g.output("b", m(x));
  const CheckReport report = check(g);
  ASSERT_EQ(report.notes.size(), 1u) << report.table();
  EXPECT_NE(report.notes[0].find("m(x) is written 2 times (in a, b): computed once"),
            std::string::npos)
      << report.notes[0];
  auto model = build(g, report);
  EXPECT_EQ(calls_of(model, "m"), 1u);
}

TEST_F(SimplifyTest, AnOutputAddedAfterCheckIsBuilt) {
  // build(graph, report) reuses check's models; what runs follows the
  // outputs as they are now.
  Graph g;
  auto x = g.input("x", {N, 4});
  auto r = relu(x);
  g.set_name(r, "r");
  g.output("y", x * 2.0);
  const CheckReport report = check(g);
  g.output("r_out", r);
  auto model = build(g, report);
  torch::NoGradGuard no_grad;
  const auto input = torch::randn({2, 4});
  const auto out = model.forward({input}).toGenericDict();
  EXPECT_TRUE(torch::equal(out.at("r_out").toTensor(), torch::relu(input)));
}

TEST_F(SimplifyTest, ConcurrentBuildsRunARepeatedCallOnce) {
  Graph g;
  auto x = g.input("x", {N, 10});
  auto a = load(fixture("seed001_ex3_module1.pt")).name("a");
  auto b = load(fixture("seed001_ex3_module2.pt")).name("b");
  g.output("y", concat({a(x), b(x), a(x)}, 1));
  auto model = build(g, BuildOptions().concurrent(true));
  EXPECT_EQ(calls_of(model, "a"), 1u);
  auto plain = build(g);
  const auto input = torch::randn({2, 10});
  EXPECT_TRUE(torch::allclose(call(model, input), call(plain, input)));
}

}  // namespace
}  // namespace stitch
