#pragma once
// The saved artifact: one TorchScript file with stitch/spec.yaml and
// stitch/manifest.json inside, loadable by torch.jit.load and
// torch::jit::load.

#include <torch/script.h>

#include <filesystem>
#include <string>
#include <vector>

namespace stitch {

/// Folds weights into constants for inference (torch::jit::freeze): a
/// BatchNorm or a scale folds into the conv before it, also across the
/// boundary between two components; convolution weights are stored
/// channels-last, so oneDNN runs the convolutions without reordering the
/// activations between them. The result is eval-only, keeps stitch's
/// metadata, and loads in Python and C++. Not to be confused with freezing
/// parameters in a spec (`freeze:`), which only stops training them.
[[nodiscard]] torch::jit::Module fold_weights(const torch::jit::Module& module);

/// Saves a module built by stitch with its metadata. Writes a temporary file
/// and renames it: a failure never leaves a partial file and never touches an
/// earlier file at `file`. Throws IoError.
void save(const torch::jit::Module& module, const std::filesystem::path& file);

/// Loads any TorchScript file (ModelError naming the file if it cannot).
[[nodiscard]] torch::jit::Module load_module(const std::filesystem::path& file);

struct ArtifactMetadata {
  std::string spec_yaml;      // "" if the file was not made by stitch
  std::string manifest_json;  // ""
};
/// Reads stitch/spec.yaml and stitch/manifest.json from a saved file.
[[nodiscard]] ArtifactMetadata read_metadata(const std::filesystem::path& file);

/// The names of the outputs a stitch artifact declares (its manifest), in
/// order; empty for a TorchScript file stitch did not make.
[[nodiscard]] std::vector<std::string> declared_outputs(const torch::jit::Module& module);

/// Checks tensors for forward's arguments against a stitch artifact's
/// declared inputs: dims, fixed sizes, a dynamic size (N) equal wherever it
/// appears, dtype. Nothing to check for another TorchScript file. Throws
/// ShapeError naming the input, before anything runs.
void check_inputs(const torch::jit::Module& module, const std::vector<torch::Tensor>& inputs);

/// The library's version ("0.1.0").
const char* version();

}  // namespace stitch
