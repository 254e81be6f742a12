#pragma once
// A model file loaded for use in a graph: the TorchScript module (after any
// surgery), where it came from, and how to probe it for output shapes.

#include <torch/script.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stitch/graph.h"

namespace stitch {

struct Component {
  ModelSpec spec;
  torch::jit::Module module;
  std::string sha256;  // of the file as read; for a merge, merge_identity's
  /// A merge's sources' sha256, in order, then the base's.
  std::vector<std::string> merge_sha256;
  /// A merge's "merged 2 models by linear: ..." line.
  std::string merge_summary;

  /// The declared argument types of the method (without self).
  std::vector<c10::Argument> arguments() const;
  /// Runs the method under no_grad on example inputs.
  c10::IValue run(const std::vector<c10::IValue>& inputs);
};

/// Loads spec.file, or merges spec.merge's files (ModelError naming the file when it is missing,
/// not a TorchScript archive, truncated or corrupt), applies cut/after/taps and puts the module in
/// eval mode.
Component load_component(const ModelSpec& spec);

/// Hex sha256 of a file's bytes.
std::string sha256_hex(const std::string& bytes);

/// The identity of a merge: the sha256 of its method, options and sources'
/// sha256 (the same merge of the same files has the same identity).
std::string merge_identity(const MergeOptions& options, const std::vector<std::string>& sha256s);

/// What Component::sha256 would be for `spec`, from its files alone (the
/// file's sha256, or the merge's identity); nothing if a file is missing.
std::optional<std::string> source_identity(const ModelSpec& spec);

/// What a model's method expects for argument `index`, read from its first
/// layer that consumes it (Linear in_features, Conv in_channels, ...).
struct Expectation {
  std::string layer;        // "fc", "0", "features.0"
  std::string description;  // "Linear(in_features=512)"
  Shape shape;              // expected shape; N for the batch
  bool flattened = false;   // the model flattens the input before the layer
};
std::optional<Expectation> expected_input(const Component& c, size_t index);

}  // namespace stitch
