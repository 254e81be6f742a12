#pragma once
// Graph -> torch::jit::Module: components registered under their spec names,
// built-in layers as submodules, generated TorchScript for forward.

#include <torch/arg.h>
#include <torch/script.h>

#include <string>

#include "stitch/check.h"
#include "stitch/graph.h"

namespace stitch {

/// Options for building and exporting a combined model.
///   stitch::build(g, stitch::BuildOptions().training(true));
struct BuildOptions {
  /// Leave the module in training mode (default: eval, an inference artifact).
  TORCH_ARG(bool, training) = false;
  /// Run independent model calls concurrently (TorchScript fork/wait on
  /// LibTorch's inter-op thread pool): e.g. the two encoders of a late
  /// fusion. See docs/compose.md for when it pays.
  TORCH_ARG(bool, concurrent) = false;
  /// With training: run each model frozen as a whole (`freeze: true`) as
  /// an inference graph, as `--optimize` does (eval mode, BatchNorm folded
  /// into the convolutions, their weights channels-last), since nothing in
  /// it trains. Its parameters become constants, so such a module runs a
  /// training but is not the artifact to ship: `stitch train` writes
  /// model.pt from a plain build with the trained weights copied in.
  TORCH_ARG(bool, fold_frozen) = false;
  /// With training: batched products of small matrices (aten::bmm and
  /// aten::matmul with every side at most 64, float32, e.g. attention in a
  /// small transformer) run on stitch's own kernel, several times faster
  /// than LibTorch 1.13's loop over BLAS calls. The module's forward is
  /// inlined and calls stitch::bmm, an operator only stitch's library
  /// has, so like fold_frozen this is for running a training, not for the
  /// artifact to ship.
  TORCH_ARG(bool, small_matmul) = false;
};

/// Checks shapes (throws ShapeError etc. before anything is built), then
/// builds the module. The module carries its spec and manifest (see
/// artifact.h) so that stitch::save writes them into the file.
[[nodiscard]] torch::jit::Module build(const Graph& graph, const BuildOptions& options = {});

/// Builds a graph that check(graph) gave `report` for, with the models check
/// loaded, cut and probed, so that nothing is loaded or probed twice:
///   auto report = stitch::check(g);   // print report.table()...
///   auto model = stitch::build(g, report);
/// The first build from a report takes its models; a later one, or one with
/// a report of another graph (or of this graph before it changed), checks
/// again as build(graph, options) does.
[[nodiscard]] torch::jit::Module build(const Graph& graph, const CheckReport& report,
                                       const BuildOptions& options = {});

}  // namespace stitch
