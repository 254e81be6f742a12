// What trains and how: parameter groups (lr_for), the optimizer, and the
// train/eval mode of frozen parts.

#include <fmt/format.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <set>

#include "train/fused_adam.h"
#include "train/train_internal.h"

namespace stitch::train_detail {

namespace {

std::string top_level(const std::string& name) {
  return name.substr(0, name.find('.'));
}

std::unique_ptr<torch::optim::OptimizerOptions> options_for(const TrainConfig& c, double lr) {
  using namespace torch::optim;
  if (c.optimizer == "sgd") {
    return std::make_unique<SGDOptions>(
        SGDOptions(lr).momentum(c.momentum).weight_decay(c.weight_decay.value_or(0.0)));
  }
  if (c.optimizer == "adam") {
    return std::make_unique<AdamOptions>(
        AdamOptions(lr).weight_decay(c.weight_decay.value_or(0.0)));
  }
  return std::make_unique<AdamWOptions>(
      AdamWOptions(lr).weight_decay(c.weight_decay.value_or(0.01)));
}

bool is_batchnorm(const torch::jit::Module& m) {
  auto name = m.type()->name();
  return name && name->name().find("BatchNorm") != std::string::npos;
}

/// A BatchNorm's mode sits in its `training` attribute only if its graph
/// reads it; a traced model has the mode of export time baked in as a
/// constant. Returns the constant mode if so.
std::optional<bool> fixed_mode(const torch::jit::Module& model, const std::string& method) {
  auto fn = model.find_method(method);
  if (!fn) return std::nullopt;
  auto graph = fn->graph()->copy();
  torch::jit::Inline(*graph);
  for (const auto* node : graph->nodes()) {
    const auto kind = node->kind();
    int flag = -1;
    if (kind == c10::Symbol::aten("batch_norm")) flag = 5;
    if (kind == c10::Symbol::aten("dropout") || kind == c10::Symbol::aten("feature_dropout")) {
      flag = 2;
    }
    if (flag < 0 || node->inputs().size() <= static_cast<size_t>(flag)) continue;
    if (auto value = torch::jit::toIValue(node->input(flag))) {
      if (value->isBool()) return value->toBool();
    }
  }
  return std::nullopt;
}

void warn_fixed_mode(const torch::jit::Module& model, const ModelSpec& spec,
                     const std::function<void(const std::string&)>& warn) {
  auto mode = fixed_mode(model, spec.method);
  if (!mode) return;
  const bool frozen = spec.freeze_all;
  std::string effect;
  if (*mode && frozen) {
    effect = "its BatchNorm running statistics will drift although it is frozen";
  } else if (*mode) {
    effect = "it stays in training mode in model.pt too";
  } else if (!frozen) {
    effect = "its BatchNorm/dropout stay in eval mode while it trains";
  } else {
    return;  // frozen and fixed in eval mode: what training wants anyway
  }
  warn(
      fmt::format("warning: model '{}' ({}) has training={} fixed in its graph (it was made with "
                  "torch.jit.trace), so stitch cannot switch its mode: {}\n"
                  "  fix: export it with torch.jit.script",
                  spec.name, spec.file.filename().string(), *mode ? "True" : "False", effect));
}

}  // namespace

ParamGroups group_parameters(const torch::jit::Module& module, const TrainConfig& config) {
  std::set<std::string> children;
  for (const auto& child : module.named_children()) children.insert(child.name);
  for (const auto& [name, lr] : config.lr_for) {
    if (!children.count(name)) {
      std::string known;
      for (const auto& c : children) known += (known.empty() ? "" : ", ") + c;
      throw SpecError(
          fmt::format("train.lr_for: no model or layer named '{}'; the combined "
                      "model has: {}",
                      name, known));
    }
  }
  ParamGroups out;
  std::map<std::string, std::vector<torch::Tensor>> by_group;  // "" = default lr
  std::vector<torch::Tensor> defaults;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!p.value.requires_grad()) continue;  // frozen: never given to the optimizer
    out.names.push_back(p.name);
    out.params.push_back(p.value);
    const auto group = top_level(p.name);
    if (config.lr_for.count(group)) {
      by_group[group].push_back(p.value);
    } else {
      defaults.push_back(p.value);
    }
  }
  if (out.params.empty()) {
    throw SpecError(
        "train: every parameter is frozen; nothing to train\n"
        "  fix: unfreeze a model or add a learned layer (linear, mlp, ...)");
  }
  if (!defaults.empty()) out.groups.emplace_back(config.lr, std::move(defaults));
  for (auto& [name, params] : by_group) {
    out.groups.emplace_back(config.lr_for.at(name), std::move(params));
  }
  return out;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& config,
                                                        const ParamGroups& groups) {
  using namespace torch::optim;
  std::vector<OptimizerParamGroup> param_groups;
  for (const auto& [lr, params] : groups.groups) {
    param_groups.emplace_back(params, options_for(config, lr));
  }
  if (config.optimizer == "sgd") {
    return std::make_unique<SGD>(param_groups,
                                 SGDOptions(config.lr)
                                     .momentum(config.momentum)
                                     .weight_decay(config.weight_decay.value_or(0.0)));
  }
  if (config.optimizer == "adam") {
    return std::make_unique<FusedAdam>(
        param_groups, AdamOptions(config.lr).weight_decay(config.weight_decay.value_or(0.0)));
  }
  return std::make_unique<FusedAdamW>(
      param_groups, AdamWOptions(config.lr).weight_decay(config.weight_decay.value_or(0.01)));
}

void drop_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) p.mutable_grad().reset();
  }
}

void set_training_modes(torch::jit::Module& module, const Graph& graph,
                        const std::function<void(const std::string&)>& warn) {
  module.train();
  for (const auto& name : graph.model_order()) {
    const ModelSpec& spec = graph.model(name);
    auto model = module.attr(name).toModule();
    warn_fixed_mode(model, spec, warn);
    if (spec.freeze_all) {
      model.eval();
      continue;
    }
    if (spec.freeze.empty()) continue;
    // Glob-frozen: a BatchNorm whose parameters are all frozen keeps its
    // running statistics too.
    for (const auto& sub : model.named_modules()) {
      if (!is_batchnorm(sub.value)) continue;
      bool any = false, all_frozen = true;
      for (const auto& p : sub.value.parameters(/*recurse=*/false)) {
        any = true;
        all_frozen = all_frozen && !p.requires_grad();
      }
      if (any && all_frozen) {
        torch::jit::Module batchnorm = sub.value;  // a handle to the same module
        batchnorm.eval();
      }
    }
  }
}

}  // namespace stitch::train_detail
