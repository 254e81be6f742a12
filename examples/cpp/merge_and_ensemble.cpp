// Two trained models of one architecture combined two ways: in weight space
// (stitch::merge, and a merge as a component of a graph) and in their outputs
// (the ensemble op). Each result is checked against the same arithmetic done
// by hand on the models' own tensors.
//   example_merge_and_ensemble FIXTURES_DIR

#include <stitch/stitch.h>

#include <map>

#include "check.h"

namespace {

std::map<std::string, torch::Tensor> parameters_of(const torch::jit::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out.emplace(p.name, p.value);
  return out;
}

/// resnet18's children from the first to `last`, called one after the other.
torch::Tensor run_up_to(const torch::jit::Module& resnet, const std::string& last,
                        torch::Tensor x) {
  for (const auto& child : resnet.named_children()) {
    torch::jit::Module layer = child.value;
    x = layer.forward({x}).toTensor();
    if (child.name == last) break;
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : "fixtures";
  const std::string a_file = dir + "/resnet18.pt", b_file = dir + "/resnet18_b.pt";
  torch::NoGradGuard no_grad;
  const auto image = torch::randn({2, 3, 64, 64});
  const auto options = stitch::MergeOptions().weights({0.7, 0.3});

  // 1. What `stitch merge resnet18.pt resnet18_b.pt --weights 0.7,0.3` writes.
  std::string summary;
  stitch::save(stitch::merge({a_file, b_file}, options, &summary), "merged.pt");
  std::cout << summary << "\n";
  auto a = torch::jit::load(a_file), b = torch::jit::load(b_file);
  auto merged = torch::jit::load("merged.pt");
  a.eval();
  b.eval();
  merged.eval();
  const auto a_params = parameters_of(a), b_params = parameters_of(b);
  std::vector<torch::Tensor> got, by_hand;
  for (const auto& [name, value] : parameters_of(merged)) {
    got.push_back(value.flatten());
    by_hand.push_back((a_params.at(name) * 0.7 + b_params.at(name) * 0.3).flatten());
  }
  expect_close("linear merge, every parameter", torch::cat(got), torch::cat(by_hand));

  // 2. The same merge as a component of a graph (a spec's merge: entry), cut
  //    at avgpool, next to ensembles of the two models' logits.
  stitch::Graph g;
  auto x = g.input("image", {stitch::N, 3, 64, 64});
  auto soup = stitch::load_merge({a_file, b_file}, options).name("soup").cut("avgpool").freeze();
  auto first = stitch::load(a_file).name("first");
  auto second = stitch::load(b_file).name("second");
  auto logits_first = first(x), logits_second = second(x);
  g.output("features", stitch::flatten(soup(x)));
  g.output("mean", stitch::ensemble({logits_first, logits_second}));
  g.output("vote", stitch::ensemble({logits_first, logits_second, logits_first}, "vote"));
  std::cout << stitch::check(g).table();
  auto out = g.build().forward({image}).toGenericDict();

  expect_close("merge entry cut at avgpool", out.at("features").toTensor(),
               run_up_to(merged, "avgpool", image).flatten(1));
  const auto la = a.forward({image}).toTensor(), lb = b.forward({image}).toTensor();
  expect_close("ensemble mean", out.at("mean").toTensor(), (la + lb) / 2);
  // Two of the three votes are the first model's: its argmax wins.
  expect_close("ensemble vote", out.at("vote").toTensor().to(torch::kFloat),
               la.argmax(-1).to(torch::kFloat));
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
