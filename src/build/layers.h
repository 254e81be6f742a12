#pragma once
// stitch's built-in layers as TorchScript modules, created with their input
// sizes known from the checked shapes and initialized as PyTorch does.

#include "stitch/graph.h"

#include <torch/script.h>

#include <optional>

namespace stitch {

struct LayerContext {
  std::shared_ptr<torch::jit::CompilationUnit> cu;
  at::Generator generator;  // seeded: the same spec builds the same weights
};

/// An empty TorchScript module of class __torch__.stitch.<type>, with the
/// `training` attribute Python modules have.
torch::jit::Module new_module(const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                              const std::string& type);

/// The submodule a built-in op node needs (linear, conv, normalize...), or
/// nullopt for ops that are plain functions. `input` is the type of its
/// tensor argument.
std::optional<torch::jit::Module> make_layer(const Node& node, const ValueType& input,
                                             LayerContext& ctx);

}  // namespace stitch
