#pragma once
// What build leaves out of a graph, and what it computes once: an entry no
// output needs is not run (dead-code elimination), and the same model call
// or op on the same values is one computation (common subexpressions).

#include <string>
#include <vector>

#include "stitch/graph.h"

namespace stitch {

struct Simplification {
  /// By node id: the node whose value it is, itself or an earlier node that
  /// computes the same (same model call or op, same arguments). Layers with
  /// weights of their own (linear, mlp, adapt...) and random ops (dropout)
  /// are never the same as another node.
  std::vector<int> same_as;
  /// By node id: whether forward computes it. Inputs are never computed.
  std::vector<bool> runs;
  /// What check says about it: entries no output needs, repeats computed once.
  std::vector<std::string> notes;
};

[[nodiscard]] Simplification simplify(const Graph& graph);

}  // namespace stitch
