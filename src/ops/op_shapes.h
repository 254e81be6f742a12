#pragma once
// The built-in ops' shape rules (op_shapes.cpp): what check infers for each
// op node from its arguments' types.

#include "stitch/graph.h"
#include "stitch/shape.h"

#include <string>
#include <vector>

namespace stitch {

/// The output type of a built-in op node given its argument types (nullptr
/// for literal arguments). Sets `note` to a short description of what the
/// op will be (e.g. "Linear(512 -> 5)"). Throws ShapeError.
ValueType infer_op(const Graph& graph, const Node& node,
                   const std::vector<const ValueType*>& args, std::string& note);

/// A ShapeError at the node's location.
[[noreturn]] void shape_error(const Node& node, const std::string& message);

}  // namespace stitch
