#pragma once
// stitch::build's entry for callers that have checked the graph already.

#include <torch/script.h>

#include <map>
#include <string>

#include "check/analysis.h"
#include "stitch/build.h"

namespace stitch {

/// Built-in layers' submodule names in a built module -> the node each is for.
using LayerNodes = std::map<std::string, int>;

/// stitch::build from an analysis already made (the same module).
torch::jit::Module build(const Graph& graph, Analysis analysis, const BuildOptions& options,
                         LayerNodes* layer_nodes = nullptr);

}  // namespace stitch
