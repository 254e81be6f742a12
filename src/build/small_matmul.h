#pragma once
// Batched products of small matrices for training (BuildOptions::
// small_matmul): attention's q @ k^T and attn @ v in a small transformer.
//
// LibTorch 1.13 computes aten::bmm on the CPU by calling BLAS once per
// matrix of the batch, through ATen's per-call checks: a [32, 16, 16] @
// [32, 16, 16] product takes about 50 us, nearly all of it overhead (the
// arithmetic is 131k multiply-adds). stitch::bmm computes such products in
// one pass with the row's accumulators in registers (about 5 us), and hands
// anything else to aten::bmm.

#include <torch/script.h>

namespace stitch::detail {

/// Whether stitch::bmm computes `a @ b` itself: float32 tensors of three
/// dimensions on the CPU, with every matrix side from 1 to 64. Otherwise
/// it calls at::bmm.
bool small_bmm_applies(const at::Tensor& a, const at::Tensor& b);

/// a @ b for [P, M, K] and [P, K, N] (any strides), differentiable: the
/// same as at::bmm up to the order of the float additions.
at::Tensor bmm(const at::Tensor& a, const at::Tensor& b);

/// at::matmul, computed by stitch::bmm when both sides have the same
/// batch dimensions (two or more dimensions each, at least three in all)
/// and small_bmm_applies to the flattened batch.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b);

/// Inlines `forward` of `module` (the calls into its submodules) and
/// replaces every aten::bmm and aten::matmul in it with stitch::bmm and
/// stitch::matmul. The module then runs only in a process with stitch's
/// library loaded: it is for training, not for saving. Returns how many
/// calls were replaced.
int use_small_matmul(torch::jit::Module& module);

}  // namespace stitch::detail
