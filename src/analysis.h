#pragma once
// The checked graph: loaded components and every node's type. What `check`
// reports and what `build` generates code from.

#include "component.h"
#include "stitch/build.h"
#include "stitch/check.h"
#include "stitch/graph.h"

#include <map>
#include <string>
#include <vector>

namespace stitch {

struct Analysis {
  const Graph* graph = nullptr;
  std::map<std::string, Component> components;  // by model name
  std::vector<ValueType> types;                  // by node id
  std::vector<std::string> notes;                // by node id
};

/// Loads components and infers every node's type. Throws stitch::Error.
Analysis analyze(const Graph& graph);

/// Built-in layers' submodule names in a built module -> the node each is for.
using LayerNodes = std::map<std::string, int>;

/// stitch::build from an analysis already made (the same module).
torch::jit::Module build(const Graph& graph, Analysis analysis, const BuildOptions& options,
                         LayerNodes* layer_nodes = nullptr);

/// One `check` row per node of an analyzed graph.
std::vector<NodeReport> node_reports(const Graph& graph, const Analysis& analysis);

/// The type of a value computed by a run, with its concrete sizes.
ValueType value_type(const c10::IValue& value);

/// The output type of a built-in op node given its argument types (nullptr
/// for literal arguments). Sets `note` to a short description of what the
/// op will be (e.g. "Linear(512 -> 5)"). Throws ShapeError.
ValueType infer_op(const Graph& graph, const Node& node,
                   const std::vector<const ValueType*>& args, std::string& note);

/// A ShapeError at the node's location.
[[noreturn]] void shape_error(const Node& node, const std::string& message);

}  // namespace stitch
