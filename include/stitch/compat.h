#pragma once
// Operators that models saved by a newer PyTorch call and this LibTorch
// lacks. stitch registers them under their real names and schemas, so that
// torch::jit::load of such a model succeeds in any program linked with
// stitch. On LibTorch 1.13 that is aten::scaled_dot_product_attention
// (PyTorch 2.x's attention, which every nn.MultiheadAttention,
// nn.Transformer*, torchvision ViT and torchaudio wav2vec2 calls); on
// LibTorch 2.x there is none. docs/compatibility.md has the list.

#include <torch/script.h>

#include <string>
#include <vector>

namespace stitch {

/// The operators stitch adds to this LibTorch ("aten::scaled_dot_product_attention").
const std::vector<std::string>& compat_operators();

/// Registers them, once. Every stitch function that loads a model calls it;
/// a program that calls torch::jit::load itself calls it first.
void register_compat_operators();

/// The compatibility operators `module`'s methods call, sorted.
[[nodiscard]] std::vector<std::string> compat_operators_used(const torch::jit::Module& module);

}  // namespace stitch
