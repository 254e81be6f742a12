// One training step: the part of `stitch train` that runs the model
// (forward, loss, backward), shared by the loop in train.cpp and by
// stitch::TrainStep.

#include <fmt/format.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <cmath>

#include "stitch/build.h"
#include "train/train_internal.h"

namespace stitch {

namespace train_detail {

BuildOptions training_build_options() {
  return BuildOptions().training(true).fold_frozen(true).small_matmul(true);
}

Named forward(torch::jit::Module& module, const Graph& graph, const Dataset& data,
              const Named& batch) {
  std::vector<c10::IValue> inputs;
  for (const auto& name : data.inputs) inputs.emplace_back(batch.at(name));
  // TorchScript's optimizing executor would differentiate the model itself
  // (autodiff subgraphs); for training on the CPU that costs more than
  // LibTorch's autograd recording each operator as it runs. Measured, step
  // with / without: small dual encoder 0.86x, resnet18 + transformer 0.95x,
  // frozen resnet18 + head 1.0x (bench/notes.md). This thread only: calls
  // the model forks run on other threads, optimized.
  torch::jit::GraphOptimizerEnabledGuard plain_executor(false);
  c10::IValue out = with_context("running the model", [&] { return module.forward(inputs); });
  Named values;
  if (out.isTensor()) {
    values[graph.outputs().at(0).first] = out.toTensor();
  } else {
    for (const auto& item : out.toGenericDict()) {
      values[item.key().toStringRef()] = item.value().toTensor();
    }
  }
  for (const auto& name : data.targets) values[name] = batch.at(name);
  return values;
}

double forward_backward(torch::jit::Module& module, const Graph& graph, const Dataset& data,
                        const std::vector<LossTerm>& loss, const Named& batch, double share) {
  torch::Tensor value = compute_loss(loss, forward(module, graph, data, batch));
  const double scaled = value.item<double>() * share;
  if (std::isfinite(scaled)) (share == 1.0 ? value : value * share).backward();
  return scaled;
}

}  // namespace train_detail

using namespace train_detail;

struct TrainStep::State {
  const Graph& graph;
  TrainConfig config;
  Dataset names;  // inputs and targets only: the batch brings the tensors
  torch::jit::Module module;
  ParamGroups groups;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

TrainStep::TrainStep(const Spec& spec) {
  with_context("preparing a training step", [&] {
    TrainConfig config = parse_train_config(spec);
    Dataset names;
    for (int id : spec.graph.inputs()) names.inputs.push_back(spec.graph.nodes()[id].name);
    names.targets = config.targets(spec.graph);
    torch::jit::Module module = build(spec.graph, training_build_options());
    set_training_modes(module, spec.graph, [](const std::string&) {});
    ParamGroups groups = group_parameters(module, config);
    auto optimizer = make_optimizer(config, groups);
    torch::manual_seed(config.seed);
    state_.reset(new State{spec.graph, std::move(config), std::move(names), std::move(module),
                           std::move(groups), std::move(optimizer)});
  });
}

TrainStep::TrainStep(TrainStep&&) noexcept = default;
TrainStep& TrainStep::operator=(TrainStep&&) noexcept = default;
TrainStep::~TrainStep() = default;

double TrainStep::operator()(const std::map<std::string, torch::Tensor>& batch) {
  State& s = *state_;
  std::vector<std::string> needed = s.names.inputs;
  needed.insert(needed.end(), s.names.targets.begin(), s.names.targets.end());
  Named named;
  for (const auto& name : needed) {
    auto it = batch.find(name);
    if (it == batch.end()) {
      std::string all;
      for (const auto& n : needed) all += (all.empty() ? "" : ", ") + n;
      throw Error(fmt::format("training step: the batch has no '{}' (it needs {})", name, all));
    }
    named[name] = it->second;
  }
  for (const auto& name : s.names.targets) {
    named[name] = named[name].to(target_dtype(s.config.loss, name, named[name]));
  }
  drop_gradients(*s.optimizer);
  const double loss = forward_backward(s.module, s.graph, s.names, s.config.loss, named, 1.0);
  if (!std::isfinite(loss)) {
    throw Error(
        fmt::format("training step: the loss is {}", std::isnan(loss) ? "NaN" : "infinite"));
  }
  s.optimizer->step();
  return loss;
}

torch::jit::Module& TrainStep::module() {
  return state_->module;
}

}  // namespace stitch
