#include "load/merge_weights.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <cmath>
#include <map>
#include <set>

#include "stitch/error.h"
#include "stitch/shape.h"

namespace stitch {

namespace {

/// A parameter or buffer by its dotted name.
struct StateTensor {
  std::string name;
  torch::Tensor tensor;
  bool parameter = false;
};

std::vector<StateTensor> state_of(const torch::jit::Module& module) {
  std::vector<StateTensor> state;
  for (const auto& p : module.named_parameters(true)) state.push_back({p.name, p.value, true});
  for (const auto& b : module.named_buffers(true)) state.push_back({b.name, b.value, false});
  return state;
}

std::string type_of(const torch::Tensor& t) {
  return fmt::format("{}[{}]", dtype_str(t.scalar_type()), fmt::join(t.sizes(), ", "));
}

const char* kind_of(const StateTensor& t) {
  return t.parameter ? "parameter" : "buffer";
}

[[noreturn]] void mismatch(const MergeSource& first, const MergeSource& other,
                           const std::string& what) {
  throw ModelError(fmt::format(
      "cannot merge {} into {}: {}\n  fix: merge models of one architecture, fine-tuned from "
      "one base; models whose heads differ combine in their outputs instead (ensemble)",
      other.label, first.label, what));
}

void check_same_as_first(const std::vector<StateTensor>& first_state, const MergeSource& first,
                         const MergeSource& other) {
  const std::vector<StateTensor> state = state_of(other.module);
  std::map<std::string, const StateTensor*> by_name;
  for (const auto& t : state) by_name.emplace(t.name, &t);
  for (const auto& t : first_state) {
    auto it = by_name.find(t.name);
    if (it == by_name.end()) {
      mismatch(first, other,
               fmt::format("{} has no {} '{}' ({} in {})", other.label, kind_of(t), t.name,
                           type_of(t.tensor), first.label));
    }
    const torch::Tensor& o = it->second->tensor;
    if (o.sizes() != t.tensor.sizes() || o.scalar_type() != t.tensor.scalar_type()) {
      mismatch(first, other,
               fmt::format("{} is {} in {} but {} in {}", t.name, type_of(o), other.label,
                           type_of(t.tensor), first.label));
    }
    by_name.erase(it);
  }
  for (const auto& t : state) {
    if (by_name.count(t.name)) {
      mismatch(first, other,
               fmt::format("{} has a {} '{}' ({}) that {} lacks", other.label, kind_of(t), t.name,
                           type_of(t.tensor), first.label));
    }
  }
}

/// Linear weights for the tensor `name`: its glob's, else the weights given,
/// else 1/n each.
std::vector<double> linear_weights(const MergeOptions& o, const std::string& name, size_t n) {
  for (const auto& g : o.glob_weights()) {
    if (fnmatch(g.glob.c_str(), name.c_str(), 0) == 0) return g.weights;
  }
  if (!o.weights().empty()) return o.weights();
  return std::vector<double>(n, 1.0 / static_cast<double>(n));
}

/// How floating-point buffers (BatchNorm statistics) are mixed: the linear
/// weights, (1 - t, t) for slerp, equal weights for the task-vector methods.
std::vector<double> buffer_weights(const MergeOptions& o, const std::string& name, size_t n) {
  if (o.method() == MergeMethod::linear) return linear_weights(o, name, n);
  if (o.method() == MergeMethod::slerp) return {1.0 - o.t(), o.t()};
  return std::vector<double>(n, 1.0 / static_cast<double>(n));
}

torch::Tensor weighted_sum(const std::vector<torch::Tensor>& ts, const std::vector<double>& w) {
  torch::Tensor acc = ts[0] * w[0];
  for (size_t i = 1; i < ts.size(); ++i) acc.add_(ts[i] * w[i]);
  return acc;
}

/// Spherical interpolation from a (t = 0) to b (t = 1), linear where the two
/// are nearly parallel or either is zero (mergekit's thresholds).
torch::Tensor slerp(const torch::Tensor& a, const torch::Tensor& b, double t) {
  const torch::Tensor a64 = a.to(torch::kDouble), b64 = b.to(torch::kDouble);
  const double na = a64.norm().item<double>(), nb = b64.norm().item<double>();
  auto lerp = [&] { return a * (1.0 - t) + b * t; };
  if (na < 1e-8 || nb < 1e-8) return lerp();
  const double cos = (a64 * b64).sum().item<double>() / (na * nb);
  if (std::abs(cos) > 0.9995) return lerp();
  const double omega = std::acos(cos), sin_omega = std::sin(omega);
  return a * (std::sin((1.0 - t) * omega) / sin_omega) + b * (std::sin(t * omega) / sin_omega);
}

/// TIES' trim: the k = max(1, floor(density * numel)) entries largest in
/// magnitude, the rest zero.
torch::Tensor trim(const torch::Tensor& tau, double density) {
  const torch::Tensor flat = tau.flatten();
  const int64_t k = std::min<int64_t>(
      flat.numel(),
      std::max<int64_t>(
          1, static_cast<int64_t>(std::floor(density * static_cast<double>(flat.numel())))));
  const torch::Tensor index = std::get<1>(flat.abs().topk(k));
  return torch::zeros_like(flat).index_put_({index}, flat.index({index})).view_as(tau);
}

/// TIES: trim each task vector, elect the sign of their sum, average the
/// entries that agree with it.
torch::Tensor ties(const std::vector<torch::Tensor>& taus, double density) {
  std::vector<torch::Tensor> trimmed;
  for (const auto& tau : taus) trimmed.push_back(trim(tau, density));
  const torch::Tensor sign = torch::stack(trimmed).sum(0).sign();
  torch::Tensor total = torch::zeros_like(taus[0]), count = torch::zeros_like(taus[0]);
  for (const auto& t : trimmed) {
    const torch::Tensor agree = (t.sign() == sign) & (t != 0);
    total.add_(t * agree);
    count.add_(agree.to(t.scalar_type()));
  }
  return total / count.clamp_min(1);
}

}  // namespace

std::string MergeSummary::str(MergeMethod method, const std::string& first) const {
  return fmt::format(
      "merged {} models by {}: {} parameters ({:.1f}M values), {} float buffers averaged, {} "
      "integer tensors kept from {}",
      models, merge_method_name(method), parameters, static_cast<double>(values) / 1e6,
      float_buffers, kept, first);
}

void check_same_state(const std::vector<MergeSource>& models, const MergeSource* base) {
  const std::vector<StateTensor> first = state_of(models.at(0).module);
  for (size_t i = 1; i < models.size(); ++i) check_same_as_first(first, models[0], models[i]);
  if (base != nullptr) check_same_as_first(first, models[0], *base);
}

namespace {

/// ModelError unless every glob of the weights matches a tensor.
void check_globs(const MergeOptions& options, const std::vector<StateTensor>& state,
                 const std::string& label) {
  for (const auto& g : options.glob_weights()) {
    std::vector<std::string> names;
    bool used = false;
    for (const auto& t : state) {
      used = used || fnmatch(g.glob.c_str(), t.name.c_str(), 0) == 0;
      names.push_back(t.name);
    }
    if (used) continue;
    const size_t shown = std::min<size_t>(names.size(), 4);
    throw ModelError(fmt::format(
        "weights: '{}' matches no parameter or buffer of {}\n  fix: its tensors are named like "
        "{}{} (stitch inspect {} lists its layers)",
        g.glob, label,
        fmt::join(std::vector<std::string>(names.begin(), names.begin() + shown), ", "),
        names.size() > shown ? ", ..." : "", label));
  }
}

/// One parameter merged by the method: `ts` the models' tensors, `b` the
/// base's (undefined without a base).
torch::Tensor merge_parameter(const MergeOptions& options, const std::string& name,
                              const std::vector<torch::Tensor>& ts, const torch::Tensor& b,
                              std::optional<at::Generator>& drops) {
  const size_t n = ts.size();
  std::vector<torch::Tensor> taus;
  if (b.defined()) {
    for (const auto& t : ts) taus.push_back(t - b);
  }
  switch (options.method()) {
    case MergeMethod::linear:
      return weighted_sum(ts, linear_weights(options, name, n));
    case MergeMethod::slerp:
      return slerp(ts[0], ts[1], options.t());
    case MergeMethod::task_arithmetic:
      return b + weighted_sum(taus, std::vector<double>(n, 1.0)) * options.scale();
    case MergeMethod::ties: {
      // In float: LibTorch 1.13's CPU kernels of topk and clamp lack half.
      std::vector<torch::Tensor> wide;
      for (const auto& tau : taus) wide.push_back(tau.to(torch::kFloat));
      return b + ties(wide, options.density()).to(b.scalar_type()) * options.scale();
    }
    case MergeMethod::dare: {
      torch::Tensor sum = torch::zeros_like(b);
      for (const auto& tau : taus) {
        const torch::Tensor keep = at::rand(tau.sizes(), *drops) < options.density();
        sum.add_(torch::where(keep, tau / options.density(), torch::zeros_like(tau)));
      }
      return b + sum * options.scale();
    }
  }
  return ts[0];
}

/// name -> tensor of a module's state.
std::map<std::string, torch::Tensor> tensors_by_name(const torch::jit::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : state_of(module)) out.emplace(t.name, t.tensor);
  return out;
}

}  // namespace

torch::jit::Module merge_weights(const std::vector<MergeSource>& models, const MergeSource* base,
                                 const MergeOptions& options, MergeSummary* summary,
                                 MergeInto into) {
  options.validate(models.size());
  if (options.needs_base() && base == nullptr) {
    throw Error(fmt::format("{} needs a base model", merge_method_name(options.method())));
  }
  check_same_state(models, base);
  const size_t n = models.size();
  // Every model's tensors by name (the order may differ), the base's too.
  std::vector<std::map<std::string, torch::Tensor>> by_name;
  for (const auto& m : models) by_name.push_back(tensors_by_name(m.module));
  const auto base_by_name = base ? tensors_by_name(base->module) : decltype(by_name)::value_type{};
  torch::NoGradGuard no_grad;
  torch::jit::Module merged =
      into == MergeInto::first ? models[0].module : models[0].module.deepcopy();
  const std::vector<StateTensor> state = state_of(merged);
  check_globs(options, state, models[0].label);
  MergeSummary done;
  done.models = static_cast<int64_t>(n);
  std::optional<at::Generator> drops;
  if (options.method() == MergeMethod::dare) drops = at::detail::createCPUGenerator(options.seed());
  // A tensor under two names (tied weights) is merged once: written in
  // place, it would be merged again under its second name.
  std::set<const void*> written;
  for (const StateTensor& out : state) {
    if (out.tensor.numel() > 0 && !written.insert(out.tensor.data_ptr()).second) continue;
    if (!out.tensor.is_floating_point()) {
      ++done.kept;
      continue;
    }
    if (out.tensor.numel() == 0) continue;
    std::vector<torch::Tensor> ts;
    for (size_t i = 0; i < n; ++i) ts.push_back(by_name[i].at(out.name));
    with_context<ModelError>(fmt::format("merging {} of {}", out.name, models[0].label), [&] {
      if (out.parameter) {
        ++done.parameters;
        done.values += out.tensor.numel();
        const torch::Tensor b = base ? base_by_name.at(out.name) : torch::Tensor();
        out.tensor.copy_(merge_parameter(options, out.name, ts, b, drops));
      } else {
        ++done.float_buffers;
        out.tensor.copy_(weighted_sum(ts, buffer_weights(options, out.name, n)));
      }
    });
  }
  if (summary) *summary = done;
  return merged;
}

}  // namespace stitch
