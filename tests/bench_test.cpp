// stitch::bench: the numbers are consistent with each other, inputs follow
// what the model declares, bad options and a missing Python are errors.

#include <stitch/stitch.h>

#include "test_util.h"

namespace stitch {
namespace {

using testing::fixture;

class BenchTest : public testing::SeededTest {};

torch::jit::Module doubling_module() {
  torch::jit::Module m("Doubling");
  m.define("def forward(self, x):\n  return x * 2\n");
  return m;
}

/// A stitch module whose manifest declares x: float[N, 64].
torch::jit::Module stitch_module() {
  Graph g;
  auto x = g.input("x", {N, 64});
  g.output("y", load(fixture("mlp_a.pt"))(x));
  return g.build();
}

TEST_F(BenchTest, SummarizeGivesMedianQuartilesAndSamplesPerSecond) {
  BenchStats s = summarize("stitch", {3.0, 1.0, 2.0, 5.0, 4.0}, 8);
  EXPECT_EQ(s.runs(), 5);
  EXPECT_DOUBLE_EQ(s.min_ms, 1.0);
  EXPECT_DOUBLE_EQ(s.q1_ms, 2.0);
  EXPECT_DOUBLE_EQ(s.median_ms, 3.0);
  EXPECT_DOUBLE_EQ(s.q3_ms, 4.0);
  EXPECT_DOUBLE_EQ(s.max_ms, 5.0);
  EXPECT_DOUBLE_EQ(s.samples_per_s, 8 * 1000.0 / 3.0);
  EXPECT_EQ(s.times_ms, (std::vector<double>{3.0, 1.0, 2.0, 5.0, 4.0}));  // run order kept
}

TEST_F(BenchTest, SummarizeInterpolatesAnEvenCount) {
  EXPECT_DOUBLE_EQ(summarize("stitch", {1.0, 2.0, 3.0, 10.0}, 1).median_ms, 2.5);
}

TEST_F(BenchTest, CountsRunsAndGivesConsistentNumbers) {
  auto m = doubling_module();
  auto inputs = random_inputs(m, {{"x", {4, 3}}});
  std::vector<BenchProgress> seen;
  BenchReport report = bench(m, inputs,
                             BenchOptions().runs(7).warmup(1).rounds(3).on_progress(
                                 [&](const BenchProgress& p) { seen.push_back(p); }));
  ASSERT_EQ(report.sides.size(), 1u);
  const BenchStats& s = report.sides[0];
  EXPECT_EQ(s.side, "stitch");
  EXPECT_EQ(s.runs(), 7);
  EXPECT_EQ(s.batch, 4);
  EXPECT_LE(s.min_ms, s.q1_ms);
  EXPECT_LE(s.q1_ms, s.median_ms);
  EXPECT_LE(s.median_ms, s.q3_ms);
  EXPECT_LE(s.q3_ms, s.max_ms);
  EXPECT_GT(s.min_ms, 0.0);
  EXPECT_DOUBLE_EQ(s.samples_per_s, 4 * 1000.0 / s.median_ms);
  ASSERT_TRUE(s.peak_bytes.has_value());
  EXPECT_GT(*s.peak_bytes, 1 << 20);
  EXPECT_EQ(report.rounds, 3);
  ASSERT_EQ(seen.size(), 3u);  // one side, three rounds: 3 + 2 + 2 runs
  EXPECT_EQ(seen[0].sides[0].runs_done, 3);
  EXPECT_EQ(seen[2].sides[0].runs_done, 7);
  EXPECT_TRUE(seen[2].round_done);
  EXPECT_EQ(report.inputs.at(0), (std::pair<std::string, std::string>{"x", "float[4, 3]"}));
}

TEST_F(BenchTest, TableAndJsonCarryTheSameMedian) {
  auto m = doubling_module();
  BenchReport report = bench(m, random_inputs(m, {{"", {2, 5}}}), BenchOptions().runs(3));
  report.model = "doubling.pt";
  EXPECT_EQ(report.rounds, 3);  // never more rounds than runs
  EXPECT_NE(report.table().find("stitch bench doubling.pt  input x=float[2, 5]"), std::string::npos)
      << report.table();
  EXPECT_NE(report.json().find("\"median_ms\": "), std::string::npos);
}

TEST_F(BenchTest, RandomInputsTakeTheDeclaredShapeWithNSetToOne) {
  auto m = stitch_module();
  auto inputs = random_inputs(m, {});
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].sizes(), (std::vector<int64_t>{1, 64}));
  EXPECT_EQ(random_inputs(m, {{"x", {3, 64}}})[0].size(0), 3);
  EXPECT_TRUE(random_inputs(m, {}, 7)[0].equal(random_inputs(m, {}, 7)[0]));  // seeded
}

TEST_F(BenchTest, RandomInputsRefuseAShapeThatContradictsTheDeclaredOne) {
  EXPECT_THROW_TYPE_WITH(random_inputs(stitch_module(), {{"x", {3, 65}}}), Error,
                         "input 'x': shape 3x65 does not fit the declared float[N, 64]");
}

TEST_F(BenchTest, RandomInputsNameTheInputsOnAnUnknownName) {
  EXPECT_THROW_TYPE_WITH(random_inputs(stitch_module(), {{"image", {1, 64}}}), Error,
                         "the model has no input 'image'; its inputs are: x");
}

TEST_F(BenchTest, RandomInputsNeedAShapeWhenTheModelDeclaresNone) {
  EXPECT_THROW_TYPE_WITH(random_inputs(doubling_module(), {}), Error, "missing input 'x'");
}

TEST_F(BenchTest, IntegerInputsAreValidIndices) {
  Graph g;
  auto tokens = g.input("tokens", {N, 8}, at::kLong);
  g.output("y", embedding(tokens, 2, 4));
  auto inputs = random_inputs(g.build(), {{"tokens", {16, 8}}});
  EXPECT_EQ(inputs[0].scalar_type(), at::kLong);
  EXPECT_GE(inputs[0].min().item<int64_t>(), 0);
  EXPECT_LE(inputs[0].max().item<int64_t>(), 1);
}

TEST_F(BenchTest, RefusesFewerThanOneRun) {
  auto m = doubling_module();
  auto inputs = random_inputs(m, {{"x", {1, 3}}});
  EXPECT_THROW_TYPE_WITH(bench(m, inputs, BenchOptions().runs(0)), Error,
                         "runs must be at least 1 (got 0)");
}

TEST_F(BenchTest, AWrongInputShapeIsAnErrorNamingTheInput) {
  auto m = stitch_module();
  auto inputs = std::vector<torch::Tensor>{torch::randn({1, 65})};
  EXPECT_THROW_TYPE_WITH(bench(m, inputs, BenchOptions().runs(1)), Error,
                         "running the model on x: float[1, 65]");
}

TEST_F(BenchTest, AMissingPythonIsAnError) {
  auto m = doubling_module();
  auto inputs = random_inputs(m, {{"x", {1, 3}}});
  EXPECT_THROW_TYPE_WITH(
      bench(m, inputs, BenchOptions().runs(1).compare_python(true).python("/nonexistent/python3")),
      Error, "cannot run /nonexistent/python3");
}

}  // namespace
}  // namespace stitch
