#pragma once
// The checked graph: loaded components and every node's type. What `check`
// reports and what `build` generates code from (build/builder.h).

#include "load/component.h"
#include "ops/op_shapes.h"
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

/// One `check` row per node of an analyzed graph.
std::vector<NodeReport> node_reports(const Graph& graph, const Analysis& analysis);

/// The type of a value computed by a run, with its concrete sizes.
ValueType value_type(const c10::IValue& value);

}  // namespace stitch
