// Walks the loss table: every loss the spec can name parses with its
// defaults, and computes what PyTorch's formula for it gives, written out
// here by hand. A new loss without a case fails the walk.

#include "train/loss_table.h"

#include <stitch/train.h>

#include <functional>
#include <map>

#include "test_util.h"

namespace stitch::train_detail {
namespace {

using Xs = std::vector<torch::Tensor>;

struct LossCase {
  Xs inputs;
  std::function<torch::Tensor(const Xs&, const LossOptions&)> reference;
};

torch::Tensor unit_rows(const torch::Tensor& x) {
  return x / x.norm(2, {1}, true).clamp_min(1e-12);
}

/// F.cross_entropy(logits, labels): the mean negative log-softmax of the label.
torch::Tensor cross_entropy_by_hand(const torch::Tensor& logits, const torch::Tensor& labels) {
  return -torch::log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).mean();
}

std::map<std::string, LossCase> loss_cases() {
  const auto logits = torch::randn({6, 4});
  const auto a = torch::randn({6, 5}), b = torch::randn({6, 5});
  std::map<std::string, LossCase> cases;
  cases["cross_entropy"] = {{logits, torch::randint(4, {6})}, [](const Xs& x, const LossOptions&) {
                              return cross_entropy_by_hand(x[0], x[1]);
                            }};
  cases["mse"] = {{a, b},
                  [](const Xs& x, const LossOptions&) { return (x[0] - x[1]).pow(2).mean(); }};
  cases["bce"] = {
      {a, torch::rand({6, 5}).round()}, [](const Xs& x, const LossOptions&) {
        // F.binary_cross_entropy_with_logits, in its stable form.
        return (x[0].clamp_min(0) - x[0] * x[1] + torch::log1p(torch::exp(-x[0].abs()))).mean();
      }};
  cases["clip"] = {
      {a, b}, [](const Xs& x, const LossOptions& o) {
        auto sim = unit_rows(x[0]).mm(unit_rows(x[1]).t()) / o.at("temperature");
        auto labels = torch::arange(x[0].size(0));
        return (cross_entropy_by_hand(sim, labels) + cross_entropy_by_hand(sim.t(), labels)) / 2;
      }};
  cases["contrastive"] = {{a, b, torch::randint(2, {6})}, [](const Xs& x, const LossOptions& o) {
                            // Seed 002's loss: every pair's squared distance.
                            auto d = torch::cdist(x[0], x[1]).pow(2);
                            auto y = x[2].to(torch::kFloat);
                            return (y * d + (1 - y) * (o.at("margin") - d).clamp_min(0)).mean();
                          }};
  cases["kd"] = {{logits, torch::randn({6, 4})}, [](const Xs& x, const LossOptions& o) {
                   // Hinton et al.: sum over classes of q (log q - log p), q and p
                   // the teacher's and the student's softmax at temperature T,
                   // averaged over the batch, times T^2.
                   const double t = o.at("temperature");
                   auto q = torch::softmax(x[1] / t, 1), log_p = torch::log_softmax(x[0] / t, 1);
                   return (q * (q.log() - log_p)).sum(1).mean() * t * t;
                 }};
  return cases;
}

class LossTable : public testing::SeededTest {};

TEST_F(LossTable, EveryLossParsesAndComputesWhatPyTorchsFormulaGives) {
  const auto cases = loss_cases();
  for (const std::string& name : loss_names()) {
    SCOPED_TRACE(name);
    const LossDef* loss = find_loss(name);
    ASSERT_NE(loss, nullptr);
    auto it = cases.find(name);
    ASSERT_NE(it, cases.end()) << "no case in loss_cases(): add one with its formula";
    const LossCase& c = it->second;
    ASSERT_EQ(c.inputs.size(), loss->arity);

    // The spec's text for it: the loss of its arity, its options defaulted.
    std::string args;
    for (size_t k = 0; k < loss->arity; ++k) args += (k ? ", t" : "t") + std::to_string(k);
    const auto terms = parse_loss(name + "(" + args + ")");
    ASSERT_EQ(terms.size(), 1u);
    EXPECT_EQ(terms[0].options, loss->options);

    const torch::Tensor got = loss->compute(c.inputs, loss->options);
    const torch::Tensor want = c.reference(c.inputs, loss->options);
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6))
        << got.item<float>() << " vs " << want.item<float>();
    if (loss->correct != nullptr) {
      const auto right = loss->correct(c.inputs);
      ASSERT_TRUE(right.has_value());
      EXPECT_GE(*right, 0);
      EXPECT_LE(*right, c.inputs[0].size(0));
    }
  }
  EXPECT_EQ(loss_names().size(), cases.size()) << "a case for a loss the table does not have";
}

}  // namespace
}  // namespace stitch::train_detail
