#include "stitch/merge.h"

#include <torch/version.h>

#include "artifact/metadata.h"
#include "load/component.h"
#include "merge/merge_files.h"

namespace stitch {

LoadedSources load_sources(const std::vector<std::filesystem::path>& files,
                           const MergeOptions& options) {
  LoadedSources out;
  out.files = files;
  auto load = [&](const std::filesystem::path& file) {
    ModelSpec spec;
    spec.name = file.filename().string();
    spec.file = file;
    Component c = load_component(spec);
    out.sha256.push_back(c.sha256);
    return MergeSource{c.module, file.filename().string()};
  };
  for (const auto& file : files) out.models.push_back(load(file));
  if (options.needs_base() && !options.base().empty()) out.base = load(options.base());
  return out;
}

void set_merge_manifest(torch::jit::Module& module, const nlohmann::json& record) {
  nlohmann::json manifest;
  manifest["stitch_version"] = version();
  manifest["libtorch_version"] = TORCH_VERSION;
  manifest["merge"] = record;
  // A merged stitch artifact keeps its own attributes: the manifest is
  // replaced and the spec, which described the first model, emptied (an
  // empty spec is not written).
  for (const auto& [name, text] :
       {std::pair<const char*, std::string>{kManifestAttr, manifest.dump(2)}, {kSpecAttr, ""}}) {
    if (module.hasattr(name)) {
      module.setattr(name, text);
    } else {
      module.register_attribute(name, c10::StringType::get(), text);
    }
  }
}

void add_to_merge_manifest(torch::jit::Module& module, const std::string& key,
                           const nlohmann::json& value) {
  if (!module.hasattr(kManifestAttr)) return;
  nlohmann::json manifest =
      nlohmann::json::parse(module.attr(kManifestAttr).toStringRef(), nullptr, false);
  if (!manifest.is_object() || !manifest.contains("merge")) return;
  manifest["merge"][key] = value;
  module.setattr(kManifestAttr, manifest.dump(2));
}

torch::jit::Module merge(const std::vector<std::filesystem::path>& files,
                         const MergeOptions& options, std::string* summary) {
  options.validate(files.size());
  LoadedSources sources = load_sources(files, options);
  MergeSummary done;
  // The sources were loaded for this merge alone: it is written into the
  // first, which keeps memory at two models (docs/merge.md).
  torch::jit::Module merged = merge_weights(sources.models, sources.base ? &*sources.base : nullptr,
                                            options, &done, MergeInto::first);
  set_merge_manifest(merged, merge_record(options, files, sources.sha256));
  if (summary) *summary = done.str(options.method(), sources.models[0].label);
  return merged;
}

}  // namespace stitch
