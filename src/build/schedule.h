#pragma once
// The order in which build writes the graph's nodes into forward, and which
// model calls run concurrently with the rest (TorchScript fork/wait).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "check/simplify.h"
#include "stitch/graph.h"

namespace stitch {

/// One statement of the generated forward.
struct Step {
  enum class Kind { Run, Fork, Wait };
  Kind kind = Kind::Run;
  int node = 0;
};

/// Every node that `simple` runs, once each, as Run or as Fork then Wait, in an
/// order where every argument is computed (or waited for) before it is used.
/// Without `concurrent`, the graph's own order, all Run. With it, a model
/// call that is independent of another model call not started yet (neither
/// needs the other's output) is forked as soon as its arguments are ready
/// and waited for just before its value is first used; the heaviest call of
/// such a group (by `weight`, e.g. parameter count; the last one on a tie)
/// runs inline, on the calling thread and its intra-op threads, so a small
/// branch beside a large model costs the large one nothing.
using ModelWeights = std::map<std::string, int64_t>;
std::vector<Step> schedule(const Graph& graph, const Simplification& simple, bool concurrent,
                           const ModelWeights& weight = {});

}  // namespace stitch
