#pragma once
// The spec file (YAML): inputs, models, graph, outputs, train. The loader
// builds the same stitch::Graph the C++ API builds. Errors carry the spec's
// file:line:column.

#include <filesystem>
#include <string>

#include "stitch/graph.h"

namespace stitch {

struct Spec {
  Graph graph;
  std::filesystem::path file;  // the spec file; relative paths are from its folder
  std::string train_yaml;      // the `train:` section as YAML text ("" if none)
  /// The spec's text as read ("" for a Spec made in C++): where train's
  /// keys are, for errors with their line and column.
  std::string text;
};

/// Reads and parses a spec file. Model files are resolved relative to the
/// spec's folder. Throws SpecError ("spec.yaml:9:10: ...") or IoError.
[[nodiscard]] Spec load_spec(const std::filesystem::path& file);

/// Parses spec text; `file` names it in errors and anchors relative paths.
[[nodiscard]] Spec parse_spec(const std::string& text, const std::filesystem::path& file);

/// Parses one graph expression ("linear(flatten(x), 5)") into `graph`,
/// resolving names through `scope` (names already assigned) and models
/// registered in the graph. `loc` is where the expression starts.
Value parse_expression(Graph& graph, const std::string& text,
                       const std::map<std::string, Value>& scope, const SourceLoc& loc);

/// Writes a graph as spec YAML (inputs, models, graph, outputs), for graphs
/// built from C++ and for the artifact's stitch/spec.yaml.
[[nodiscard]] std::string to_spec_yaml(const Graph& graph);

}  // namespace stitch
