#pragma once
// A picture of a combined network for `stitch graph`: inputs, models, ops
// and outputs as boxes, shapes on the edges, frozen models and adapters
// marked. Written as Graphviz DOT; rendered to SVG (or PNG, PDF) by
// Graphviz's `dot` program.

#include <filesystem>
#include <string>

#include "stitch/check.h"
#include "stitch/graph.h"

namespace stitch {

/// DOT for a graph. With `report` (from stitch::check) edges carry shapes
/// and nodes their notes; without, the structure alone. `caption` is shown
/// under the picture (e.g. why shapes are missing).
[[nodiscard]] std::string graph_dot(const Graph& graph, const CheckReport* report,
                                    const std::string& caption = "");

/// DOT for a plain TorchScript model (not made by stitch): its inputs, one
/// box with its class and children, its output.
[[nodiscard]] std::string module_dot(const torch::jit::Module& module, const std::string& name);

/// Runs Graphviz's `dot -T<format>` with `dot_text` on stdin and returns
/// what it prints. IoError when `dot` is not installed or rejects the text.
[[nodiscard]] std::string render_dot(const std::string& dot_text, const std::string& format);

/// The picture of `file` (a spec, an artifact made by stitch, or any
/// TorchScript model) as DOT text. For an artifact, the spec inside is
/// drawn with its model files looked up beside the artifact; when they are
/// missing it is drawn without shapes and the caption says which are
/// missing.
[[nodiscard]] std::string picture_dot(const std::filesystem::path& file);

/// Draws `file` (see picture_dot) into `out`: DOT text for .dot, else the
/// format named by the extension (.svg, .png, .pdf) through `dot`. Written
/// atomically: a failure leaves no partial file.
void write_picture(const std::filesystem::path& file, const std::filesystem::path& out);

}  // namespace stitch
