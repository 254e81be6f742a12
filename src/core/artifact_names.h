#pragma once
// Where an artifact keeps stitch's metadata (artifact/metadata.h): files in
// its archive, and the module attributes that hold them until it is saved.
// Here, in core, because the graph reserves these names: no model or layer
// may take them.

namespace stitch {

constexpr const char* kSpecFile = "stitch/spec.yaml";
constexpr const char* kManifestFile = "stitch/manifest.json";
/// The module attributes that hold them until the module is saved.
constexpr const char* kSpecAttr = "stitch_spec";
constexpr const char* kManifestAttr = "stitch_manifest";

}  // namespace stitch
