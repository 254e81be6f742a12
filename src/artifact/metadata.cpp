#include "artifact/metadata.h"

#include <fmt/format.h>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#include "stitch/compat.h"
#include "stitch/spec.h"
#include "util/zip_reader.h"

namespace stitch {

namespace {

nlohmann::json shape_json(const Shape& shape) {
  auto out = nlohmann::json::array();
  for (const auto& d : shape) {
    if (d.is_static()) {
      out.push_back(d.size());
    } else {
      out.push_back(d.str());
    }
  }
  return out;
}

nlohmann::json tensor_json(const std::string& name, const ValueType& t) {
  return {{"name", name}, {"shape", shape_json(t.shape)}, {"dtype", dtype_str(t.dtype)}};
}

}  // namespace

void attach_metadata(torch::jit::Module& module, const Graph& graph, const Analysis& analysis) {
  nlohmann::json manifest;
  manifest["stitch_version"] = STITCH_VERSION;
  manifest["libtorch_version"] = TORCH_VERSION;
  auto components = nlohmann::json::array();
  for (const auto& name : graph.model_order()) {
    const Component& c = analysis.components.at(name);
    nlohmann::json entry = {{"name", name},
                            {"file", c.spec.file.filename().string()},
                            {"sha256", c.sha256},
                            {"method", c.spec.method}};
    if (!c.spec.cut.empty()) entry["cut"] = c.spec.cut;
    if (!c.spec.after.empty()) entry["after"] = c.spec.after;
    if (!c.spec.taps.empty()) entry["taps"] = c.spec.taps;
    if (!c.spec.merge.empty()) {
      entry["merge"] = merge_record(c.spec.merge_options, c.spec.merge, c.merge_sha256);
    }
    int64_t frozen = 0, total = 0;
    for (const auto& p : c.module.named_parameters(true)) {
      total += p.value.numel();
      frozen += p.value.requires_grad() ? 0 : p.value.numel();
    }
    entry["parameters"] = total;
    entry["frozen_parameters"] = frozen;
    components.push_back(entry);
  }
  manifest["components"] = components;
  auto inputs = nlohmann::json::array();
  for (int id : graph.inputs()) {
    const Node& n = graph.nodes()[id];
    auto entry = tensor_json(n.name, analysis.types[id]);
    if (n.probe) entry["probe"] = n.probe->str();
    inputs.push_back(std::move(entry));
  }
  manifest["inputs"] = inputs;
  auto outputs = nlohmann::json::array();
  for (const auto& [name, v] : graph.outputs()) {
    outputs.push_back(tensor_json(name, analysis.types[v.id()]));
  }
  manifest["outputs"] = outputs;
  // Operators of PyTorch 2.x that stitch adds to this LibTorch: a consumer
  // on a plain LibTorch this old needs them registered (docs/compatibility.md).
  manifest["compat_operators"] = compat_operators_used(module);
  const std::string spec = graph.spec_yaml.empty() ? to_spec_yaml(graph) : graph.spec_yaml;
  module.register_attribute(kSpecAttr, c10::StringType::get(), spec);
  module.register_attribute(kManifestAttr, c10::StringType::get(), manifest.dump(2));
}

nlohmann::json merge_record(const MergeOptions& options,
                            const std::vector<std::filesystem::path>& files,
                            const std::vector<std::string>& sha256s) {
  nlohmann::json record = {{"method", merge_method_name(options.method())}};
  for (const auto& option : merge_method_options(options.method())) {
    if (option == "weights") {
      if (!options.weights().empty()) record["weights"] = options.weights();
      for (const auto& g : options.glob_weights()) record["glob_weights"][g.glob] = g.weights;
    } else if (option == "seed") {
      record["seed"] = options.seed();
    } else if (option != "base") {  // the base is a source, below
      record[option] = options.number(option);
    }
  }
  auto source = [&](const std::filesystem::path& file, size_t i) {
    return nlohmann::json{{"file", file.filename().string()},
                          {"sha256", i < sha256s.size() ? sha256s[i] : ""}};
  };
  auto sources = nlohmann::json::array();
  for (size_t i = 0; i < files.size(); ++i) sources.push_back(source(files[i], i));
  record["sources"] = sources;
  if (options.needs_base()) record["base"] = source(options.base(), files.size());
  return record;
}

StoredMetadata stored_metadata(const torch::jit::Module& module) {
  StoredMetadata m;
  if (module.hasattr(kSpecAttr)) m.spec_yaml = module.attr(kSpecAttr).toStringRef();
  if (module.hasattr(kManifestAttr)) {
    m.manifest_json = module.attr(kManifestAttr).toStringRef();
  }
  return m;
}

ArtifactMetadata metadata_from_archive(std::string_view bytes, const std::filesystem::path& file) {
  try {
    const detail::ZipArchive zip(bytes);
    // torch.jit.save writes extra files as <archive>/extra/<name>.
    auto extra = [&](const std::string& name) {
      return std::string(zip.find("extra/" + name).value_or(""));
    };
    return {extra(kSpecFile), extra(kManifestFile)};
  } catch (const std::runtime_error& e) {
    throw ModelError(fmt::format("cannot read {}: {}", file.string(), e.what()));
  }
}

std::vector<RecordedComponent> recorded_components(const std::string& manifest_json) {
  const auto manifest = nlohmann::json::parse(manifest_json, nullptr, false);
  std::vector<RecordedComponent> out;
  if (!manifest.is_object() || !manifest.contains("components")) return out;
  const auto& components = manifest["components"];
  if (!components.is_array()) return out;
  for (const auto& c : components) {
    if (!c.is_object()) continue;
    const auto name = c.find("name"), sha256 = c.find("sha256");
    if (name == c.end() || !name->is_string() || sha256 == c.end() || !sha256->is_string()) {
      continue;
    }
    out.push_back({name->get<std::string>(), sha256->get<std::string>()});
  }
  return out;
}

}  // namespace stitch
