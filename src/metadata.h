#pragma once
// The metadata a combined module carries: the resolved spec and the manifest
// (stitch version, components with file name and sha256, inputs, outputs).
// Kept as string attributes on the module so stitch::save can write them as
// the archive's stitch/spec.yaml and stitch/manifest.json.

#include "analysis.h"

#include <torch/script.h>

#include <string>

namespace stitch {

constexpr const char* kSpecFile = "stitch/spec.yaml";
constexpr const char* kManifestFile = "stitch/manifest.json";
/// The module attributes that hold them until the module is saved.
constexpr const char* kSpecAttr = "stitch_spec";
constexpr const char* kManifestAttr = "stitch_manifest";

void attach_metadata(torch::jit::Module& module, const Graph& graph,
                     const Analysis& analysis);

struct StoredMetadata {
  std::string spec_yaml;
  std::string manifest_json;
};
/// Empty strings for modules not built by stitch.
StoredMetadata stored_metadata(const torch::jit::Module& module);

}  // namespace stitch
