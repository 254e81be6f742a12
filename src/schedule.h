#pragma once
// The order in which build writes the graph's nodes into forward, and which
// model calls run concurrently with the rest (TorchScript fork/wait).

#include <vector>

#include "stitch/graph.h"

namespace stitch {

/// One statement of the generated forward.
struct Step {
  enum class Kind { Run, Fork, Wait };
  Kind kind = Kind::Run;
  int node = 0;
};

/// Every node but the inputs, once each, as Run or as Fork then Wait, in an
/// order where every argument is computed (or waited for) before it is used.
/// Without `concurrent`, the graph's own order, all Run. With it, a model
/// call that is independent of another model call not started yet (neither
/// needs the other's output) is forked as soon as its arguments are ready
/// and waited for just before its value is first used; the last call of
/// such a group runs inline, on the calling thread.
std::vector<Step> schedule(const Graph& graph, bool concurrent);

}  // namespace stitch
