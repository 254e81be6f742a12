#pragma once
// Shape and dtype checking: propagates shapes through every node with dynamic
// dims kept symbolic, before anything is built or run.

#include <memory>
#include <string>
#include <vector>

#include "stitch/graph.h"

namespace stitch {

/// One row of `stitch check`: a node and what it produces.
struct NodeReport {
  int id = 0;
  std::string name;        // spec name, or "" for an intermediate value
  std::string expression;  // how it is computed: linear(flatten(x), 5)
  ValueType type;
  std::string note;  // e.g. "Linear(512 -> 5), 2565 parameters"
  SourceLoc loc;
};

namespace detail {
struct CheckedModels;
}

struct CheckReport {
  std::vector<NodeReport> nodes;
  /// What build leaves out or computes once: "z = head(x) is used by no
  /// output: left out of the build ...", "b = vision(image) is the same as
  /// a: computed once".
  std::vector<std::string> notes;
  /// A table with one line per node: name, expression, type, note; then a
  /// `note:` line for each of `notes`.
  [[nodiscard]] std::string table() const;
  /// The same as JSON: {"ok": true, "nodes": [{"name", "expression", "type",
  /// "shape": [...] or null, "dtype", "note", "line"}...], "notes": [...]}.
  [[nodiscard]] std::string json() const;

  /// The models check loaded, cut and probed, for build(graph, report) to
  /// build in as they are rather than load them again. Copies share them.
  std::shared_ptr<detail::CheckedModels> checked;
};

/// Loads the graph's models, probes them and propagates shapes through every
/// node. Throws ShapeError (with both sides and a `fix:` line), SpecError or
/// ModelError.
[[nodiscard]] CheckReport check(const Graph& graph);

}  // namespace stitch
