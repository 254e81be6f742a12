#pragma once
// The metadata a combined module carries: the resolved spec and the manifest
// (stitch version, components with file name and sha256, inputs, outputs).
// Kept as string attributes on the module so stitch::save can write them as
// the archive's stitch/spec.yaml and stitch/manifest.json.

#include <torch/script.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "check/analysis.h"
#include "core/artifact_names.h"
#include "stitch/artifact.h"

namespace stitch {

void attach_metadata(torch::jit::Module& module, const Graph& graph, const Analysis& analysis);

/// A merge as a manifest records it: the method, the options it uses, and
/// each source's file name and sha256 (`sha256s`: the sources', then the
/// base's).
nlohmann::json merge_record(const MergeOptions& options,
                            const std::vector<std::filesystem::path>& files,
                            const std::vector<std::string>& sha256s);

struct StoredMetadata {
  std::string spec_yaml;
  std::string manifest_json;
};
/// Empty strings for modules not built by stitch.
StoredMetadata stored_metadata(const torch::jit::Module& module);

/// stitch/spec.yaml and stitch/manifest.json of a saved module, read from
/// its zip archive without loading the module (which would trust sizes in
/// the file). Empty strings when absent. Throws ModelError naming `file`.
ArtifactMetadata metadata_from_archive(std::string_view bytes, const std::filesystem::path& file);

/// A component as the manifest recorded it.
struct RecordedComponent {
  std::string name;
  std::string sha256;
};
/// The manifest's components. The manifest only adds notes, so malformed
/// JSON or entries are skipped rather than reported; never throws.
std::vector<RecordedComponent> recorded_components(const std::string& manifest_json);

}  // namespace stitch
