#pragma once
// Model surgery: `cut`, `after` and `taps` rewrite a component's TorchScript
// so it returns an inner child's output, or starts from it.

#include <memory>
#include <string>
#include <vector>

#include "load/component.h"

namespace stitch {

/// Applies the component's spec.cut / spec.after / spec.taps to its module.
/// Throws ModelError for unknown paths (with the nearest names), paths that
/// are not modules, and splits that a skip connection crosses.
void apply_surgery(Component& component);

/// `method`'s graph with the calls of every submodule down to `depth` levels
/// (-1: all) inlined, returning a tuple: the output of each submodule's
/// forward, in the order of `paths`. Submodules that are not called, called
/// more than once or only inside loops and branches are left out. What
/// `inspect` runs once to see every layer's output shape.
struct SubmoduleOutputs {
  std::shared_ptr<torch::jit::Graph> graph;
  std::vector<std::string> paths;
};
SubmoduleOutputs submodule_outputs(const torch::jit::Module& module, const std::string& method,
                                   int depth);

}  // namespace stitch
