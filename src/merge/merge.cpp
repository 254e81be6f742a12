#include "stitch/merge.h"

#include <torch/version.h>

#include "artifact/metadata.h"
#include "load/component.h"
#include "merge/merge_files.h"

namespace stitch {

namespace {

nlohmann::json manifest_of(const torch::jit::Module& module) {
  if (!module.hasattr(kManifestAttr)) return {};
  auto manifest = nlohmann::json::parse(module.attr(kManifestAttr).toStringRef(), nullptr, false);
  return manifest.is_object() ? manifest : nlohmann::json{};
}

void set_string_attribute(torch::jit::Module& module, const char* name, const std::string& text) {
  if (module.hasattr(name)) {
    module.setattr(name, text);
  } else {
    module.register_attribute(name, c10::StringType::get(), text);
  }
}

}  // namespace

void set_merge_manifest(torch::jit::Module& module, const nlohmann::json& record) {
  const nlohmann::json first = manifest_of(module);
  nlohmann::json manifest;
  manifest["stitch_version"] = version();
  manifest["libtorch_version"] = TORCH_VERSION;
  manifest["merge"] = record;
  for (const char* key : {"inputs", "outputs"}) {
    if (first.contains(key)) manifest[key] = first[key];
  }
  set_string_attribute(module, kManifestAttr, manifest.dump(2));
  // An empty spec is not written.
  set_string_attribute(module, kSpecAttr, "");
}

bool has_merge_manifest(const torch::jit::Module& module) {
  return manifest_of(module).contains("merge");
}

void add_to_merge_manifest(torch::jit::Module& module, const std::string& key,
                           const nlohmann::json& value) {
  nlohmann::json manifest = manifest_of(module);
  if (!manifest.contains("merge")) return;
  manifest["merge"][key] = value;
  module.setattr(kManifestAttr, manifest.dump(2));
}

torch::jit::Module merge(const std::vector<std::filesystem::path>& files,
                         const MergeOptions& options, std::string* summary) {
  if (files.empty()) throw Error("merge: no model files given");
  // The merge entry of a spec, on its own.
  ModelSpec spec;
  spec.name = files[0].filename().string();
  spec.file = files[0];
  spec.merge = files;
  spec.merge_options = options;
  Component c = load_component(spec);
  set_merge_manifest(c.module, merge_record(options, files, c.merge_sha256));
  if (summary) *summary = c.merge_summary;
  return c.module;
}

}  // namespace stitch
