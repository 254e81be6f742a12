#pragma once
// Graph values written back as spec expressions, for messages and `check`.

#include "stitch/graph.h"

#include <string>

namespace stitch {

/// The value's spec name if it has one, else its expression.
std::string value_text(const Graph& graph, Value value);
/// The expression computing a node: op(args, key=value) with default-valued
/// keywords left out.
std::string node_expression(const Graph& graph, int id);

}  // namespace stitch
