#pragma once
// Adam and AdamW whose step updates each parameter in one pass over memory.
//
// torch::optim's step runs about ten ATen operators per parameter (mul_,
// add_, addcmul_, sqrt, div, add_, addcdiv_...): each is a dispatch, and each
// streams the parameter's state through memory again. On a small model that
// is most of the optimizer's time. These classes are torch::optim::Adam and
// AdamW (same options, same per-parameter state, so checkpoints and
// save/load are theirs) with a step that does the same arithmetic, element
// by element, in one loop. LibTorch 1.13 has no fused CPU optimizer of its
// own (torch.optim's `fused=True` came later, and only for CUDA).
//
// A parameter that is not a contiguous float32 CPU tensor with a gradient
// of the same layout goes through the operators of torch::optim instead.

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace stitch::train_detail {

class FusedAdam final : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedAdamW final : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace stitch::train_detail
