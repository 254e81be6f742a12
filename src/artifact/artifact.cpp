#include "stitch/artifact.h"

#include <fmt/format.h>
#include <torch/csrc/jit/serialization/export.h>

#include "artifact/metadata.h"
#include "stitch/error.h"
#include "util/atomic_file.h"

namespace stitch {

const char* version() {
  return STITCH_VERSION;
}

void save(const torch::jit::Module& module, const std::filesystem::path& file) {
  const StoredMetadata meta = stored_metadata(module);
  torch::jit::ExtraFilesMap extra;
  if (!meta.spec_yaml.empty()) extra[kSpecFile] = meta.spec_yaml;
  if (!meta.manifest_json.empty()) extra[kManifestFile] = meta.manifest_json;
  write_atomically(file,
                   [&](const ByteSink& sink) { torch::jit::ExportModule(module, sink, extra); });
}

torch::jit::Module load_module(const std::filesystem::path& file) {
  ModelSpec spec;
  spec.name = file.stem().string();
  spec.file = file;
  return load_component(spec).module;
}

ArtifactMetadata read_metadata(const std::filesystem::path& file) {
  return metadata_from_archive(read_file(file), file);
}

}  // namespace stitch
