#include "train/fused_adam.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "util/torch_compat.h"

namespace stitch::train_detail {

namespace {

using StateMap = torch_compat::OptimizerStateMap;
using Groups = std::vector<torch::optim::OptimizerParamGroup>;

/// The scalars of one parameter's step, as torch::optim computes them (in
/// double) and ATen applies them to a float tensor (cast to float).
struct Coefficients {
  float decay = 1.0f;  // AdamW: p *= 1 - lr * weight_decay
  float l2 = 0.0f;     // Adam: grad += weight_decay * p
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_bias_correction2;
  float eps;
  float neg_step_size;  // -lr / bias_correction1
};

/// torch::optim's operators, in their order and with their roundings:
///   AdamW  p.mul_(decay)            Adam  grad = grad.add(p, l2)
///   m.mul_(beta1).add_(grad, 1 - beta1)
///   v.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
///   denom = (v.sqrt() / sqrt(bias_correction2)).add_(eps)
///   p.addcdiv_(m, denom, -step_size)
void update(const Coefficients& c, float* __restrict p, const float* __restrict g,
            float* __restrict m, float* __restrict v, int64_t n) {
  constexpr int64_t kGrain = 32768;  // ATen's own grain for elementwise work
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float param = p[i];
      float grad = g[i];
      if (c.l2 != 0.0f) grad = grad + c.l2 * param;
      if (c.decay != 1.0f) param = param * c.decay;
      m[i] = m[i] * c.beta1 + c.one_minus_beta1 * grad;
      v[i] = v[i] * c.beta2 + c.one_minus_beta2 * grad * grad;
      const float denom = std::sqrt(v[i]) / c.sqrt_bias_correction2 + c.eps;
      p[i] = param + c.neg_step_size * m[i] / denom;
    }
  });
}

bool fusable(const torch::Tensor& p) {
  const auto& g = p.grad();
  if (!g.defined()) return true;  // skipped, as torch::optim does
  return p.scalar_type() == at::kFloat && g.scalar_type() == at::kFloat && p.is_cpu() &&
         g.is_cpu() && !g.is_sparse() && p.is_contiguous() && g.is_contiguous() &&
         g.sizes() == p.sizes();
}

/// Whether every parameter can take the fused step; otherwise the whole
/// step goes through torch::optim's operators.
template <class Options>
bool fusable(const Groups& groups) {
  for (const auto& group : groups) {
    if (static_cast<const Options&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params()) {
      if (!fusable(p)) return false;
    }
  }
  return true;
}

template <class Options, class ParamState>
void fused_step(Groups& groups, StateMap& states, bool decoupled_weight_decay) {
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    const auto& options = static_cast<const Options&>(group.options());
    const auto [beta1, beta2] = options.betas();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = states[torch_compat::optimizer_state_key(p)];
      if (!slot) {
        auto fresh = std::make_unique<ParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<ParamState&>(*slot);
      state.step(state.step() + 1);
      const double bias_correction1 = 1 - std::pow(beta1, state.step());
      const double bias_correction2 = 1 - std::pow(beta2, state.step());
      Coefficients c;
      if (options.weight_decay() != 0) {
        if (decoupled_weight_decay) {
          c.decay = static_cast<float>(1 - options.lr() * options.weight_decay());
        } else {
          c.l2 = static_cast<float>(options.weight_decay());
        }
      }
      c.beta1 = static_cast<float>(beta1);
      c.one_minus_beta1 = static_cast<float>(1 - beta1);
      c.beta2 = static_cast<float>(beta2);
      c.one_minus_beta2 = static_cast<float>(1 - beta2);
      c.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2));
      c.eps = static_cast<float>(options.eps());
      c.neg_step_size = static_cast<float>(-(options.lr() / bias_correction1));
      torch::Tensor& m = state.exp_avg();
      torch::Tensor& v = state.exp_avg_sq();
      update(c, p.data_ptr<float>(), p.grad().data_ptr<float>(), m.data_ptr<float>(),
             v.data_ptr<float>(), p.numel());
    }
  }
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  if (closure || !fusable<torch::optim::AdamOptions>(param_groups_)) {
    return torch::optim::Adam::step(closure);
  }
  fused_step<torch::optim::AdamOptions, torch::optim::AdamParamState>(param_groups_, state_, false);
  return {};
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  if (closure || !fusable<torch::optim::AdamWOptions>(param_groups_)) {
    return torch::optim::AdamW::step(closure);
  }
  fused_step<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(param_groups_, state_,
                                                                        true);
  return {};
}

}  // namespace stitch::train_detail
