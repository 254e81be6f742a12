#pragma once
// A summary of a TorchScript model or a spec, torchinfo-style: one row per
// submodule with its type, output shape, parameters and whether they train.

#include <ATen/core/ivalue.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stitch/archive_report.h"
#include "stitch/check.h"
#include "stitch/graph.h"
#include "stitch/shape.h"

namespace stitch {

/// One submodule: "layer1.0.conv1", Conv2d, float[1, 64, 56, 56], 36864.
struct ModuleRow {
  std::string path;                 // dotted; for a spec, starts with the model name
  std::string type;                 // the TorchScript class's short name (Conv2d)
  int depth = 1;                    // 1 for a top-level child
  std::optional<ValueType> output;  // unset when not run, or not seen
  int64_t parameters = 0;           // its own and its children's
  int64_t trainable = 0;            // of those, how many train

  /// "trainable", "frozen", "partly frozen" or "" (no parameters).
  std::string training() const;
};

struct InspectReport {
  std::vector<std::pair<std::string, ValueType>> inputs;
  std::vector<ModuleRow> modules;
  std::optional<ValueType> output;  // the model's own output, when run
  std::vector<NodeReport> nodes;    // a spec's graph nodes (inspect_graph)
  int64_t parameters = 0;
  int64_t trainable = 0;
  std::string note;  // e.g. "output shapes for N=1"
  /// Operators of a newer PyTorch the models call, which stitch adds to
  /// this LibTorch (stitch/compat.h); empty when none.
  std::vector<std::string> compat_operators;
  /// For a stitch artifact: "stitch 0.1.0, LibTorch 1.13.0", from its manifest.
  std::string built_with;

  /// Rows, then totals, as `stitch inspect` prints them.
  std::string table() const;
  /// The same as JSON.
  std::string json() const;
};

/// Inspects a module: every submodule down to `depth` levels (-1: all) and,
/// when `inputs` are given, each one's output for them (one forward pass in
/// eval mode, without autograd). Throws ModelError when the forward fails.
///   auto report = stitch::inspect_module(m, {torch::randn({1, 3, 224, 224})});
///   std::cout << report.table();
[[nodiscard]] InspectReport inspect_module(torch::jit::Module module,
                                           const std::vector<c10::IValue>& inputs = {},
                                           int depth = -1);

/// Concrete sizes of a spec's inputs, by input name (`--input x=8x10`).
using InputSizes = std::map<std::string, std::vector<int64_t>>;

/// Inspects a spec's graph: its models (after cut/after/taps, with their
/// freeze applied; run at N=1 on what the graph feeds them) and its nodes
/// with their checked shapes. With `sizes`, the declared inputs' symbols
/// take the sizes given (`x: [N, 10]` with x=8x10: N=8) and the shapes
/// shown are those. Throws what check() throws, and ShapeError when a size
/// contradicts the declaration.
[[nodiscard]] InspectReport inspect_graph(const Graph& graph, int depth = -1,
                                          const InputSizes& sizes = {});

}  // namespace stitch
