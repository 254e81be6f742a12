#pragma once
// Loading the files of a merge and recording it in the manifest: shared by
// stitch::merge and greedy soups.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "load/merge_weights.h"

namespace stitch {

/// Loaded models of a merge, with their files' sha256.
struct LoadedSources {
  std::vector<std::filesystem::path> files;
  std::vector<MergeSource> models;
  std::optional<MergeSource> base;
  std::vector<std::string> sha256;  // the models', then the base's
};

/// Loads every file and, when the method takes one, options.base()
/// (ModelError naming the file that cannot be read).
LoadedSources load_sources(const std::vector<std::filesystem::path>& files,
                           const MergeOptions& options);

/// Sets the manifest of a merged module: the stitch and LibTorch versions
/// and `record` under "merge" (what merge_record gives, plus anything the
/// caller adds). Clears a spec the first model carried: a merge is not
/// that graph any more.
void set_merge_manifest(torch::jit::Module& module, const nlohmann::json& record);

/// Adds `key: value` to the "merge" record of a merged module's manifest.
void add_to_merge_manifest(torch::jit::Module& module, const std::string& key,
                           const nlohmann::json& value);

}  // namespace stitch
