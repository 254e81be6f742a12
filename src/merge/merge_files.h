#pragma once
// Recording a merge in the merged module's manifest: shared by stitch::merge,
// BatchNorm statistics recomputed on data, and greedy soups.

#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <string>

namespace stitch {

/// Sets the manifest of a merged module: the stitch and LibTorch versions,
/// `record` under "merge" (what merge_record gives, plus anything the caller
/// adds), and the inputs and outputs the first model's manifest declared (a
/// merge keeps its code). Clears a spec the first model carried: a merge is
/// not that graph any more.
void set_merge_manifest(torch::jit::Module& module, const nlohmann::json& record);

/// Whether the module's manifest records a merge.
bool has_merge_manifest(const torch::jit::Module& module);

/// Adds `key: value` to the "merge" record of a merged module's manifest;
/// nothing for another module.
void add_to_merge_manifest(torch::jit::Module& module, const std::string& key,
                           const nlohmann::json& value);

}  // namespace stitch
