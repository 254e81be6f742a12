#include "artifact/declared_io.h"

#include <fmt/format.h>

#include <map>

#include "artifact/metadata.h"
#include "stitch/artifact.h"
#include "stitch/error.h"
#include "stitch/shape.h"

namespace stitch {

std::string DeclaredInput::type_str() const {
  std::vector<std::string> parts;
  for (const auto& d : dims) parts.push_back(d.is_string() ? d.get<std::string>() : d.dump());
  return fmt::format("{}[{}]", dtype_str(dtype), fmt::join(parts, ", "));
}

namespace {

nlohmann::json manifest_of(const torch::jit::Module& module) {
  const std::string manifest = stored_metadata(module).manifest_json;
  if (manifest.empty()) return nullptr;
  auto json = nlohmann::json::parse(manifest, nullptr, /*allow_exceptions=*/false);
  return json.is_object() ? json : nullptr;
}

}  // namespace

std::vector<DeclaredInput> declared_inputs(const torch::jit::Module& module) {
  const auto& schema = module.get_method("forward").function().getSchema();
  std::vector<DeclaredInput> out;
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    DeclaredInput input;
    input.name = schema.arguments()[i].name();
    input.has_default = schema.arguments()[i].default_value().has_value();
    out.push_back(std::move(input));
  }
  const auto json = manifest_of(module);
  if (json.is_null() || !json.contains("inputs") || !json["inputs"].is_array()) return out;
  for (const auto& entry : json["inputs"]) {
    if (!entry.is_object()) continue;
    for (auto& input : out) {
      if (input.name != entry.value("name", "")) continue;
      input.declared = true;
      input.dims = entry.value("shape", std::vector<nlohmann::json>{});
      input.dtype = parse_dtype(entry.value("dtype", "float")).value_or(at::kFloat);
      input.probe = entry.value("probe", "");
    }
  }
  return out;
}

std::string misfit(const DeclaredInput& input, const std::vector<int64_t>& shape) {
  bool fits = shape.size() == input.dims.size();
  for (size_t i = 0; fits && i < shape.size(); ++i) {
    fits = !input.dims[i].is_number_integer() || input.dims[i].get<int64_t>() == shape[i];
  }
  if (fits) return "";
  const std::string given =
      shape.empty() ? "a single number (0-d)" : fmt::format("shape {}", fmt::join(shape, "x"));
  return fmt::format("input '{}': {} does not fit the declared {}", input.name, given,
                     input.type_str());
}

std::vector<std::string> declared_outputs(const torch::jit::Module& module) {
  std::vector<std::string> names;
  const auto json = manifest_of(module);
  if (json.is_null() || !json.contains("outputs") || !json["outputs"].is_array()) return names;
  for (const auto& o : json["outputs"]) {
    if (o.is_object() && o.contains("name") && o["name"].is_string()) names.push_back(o["name"]);
  }
  return names;
}

void check_inputs(const torch::jit::Module& module, const std::vector<torch::Tensor>& inputs) {
  const std::vector<DeclaredInput> declared = declared_inputs(module);
  std::map<std::string, std::pair<int64_t, std::string>> symbols;  // N -> size, input
  for (size_t i = 0; i < declared.size() && i < inputs.size(); ++i) {
    const DeclaredInput& d = declared[i];
    if (!d.declared) continue;
    const torch::Tensor& t = inputs[i];
    const std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (auto why = misfit(d, shape); !why.empty()) throw ShapeError(why);
    for (size_t k = 0; k < shape.size(); ++k) {
      if (!d.dims[k].is_string()) continue;
      const auto [it, fresh] =
          symbols.emplace(d.dims[k].get<std::string>(), std::make_pair(shape[k], d.name));
      if (!fresh && it->second.first != shape[k]) {
        throw ShapeError(
            fmt::format("input '{}': {} is {} here but {} in input '{}' (shape {}, declared {})",
                        d.name, it->first, shape[k], it->second.first, it->second.second,
                        fmt::join(shape, "x"), d.type_str()));
      }
    }
    if (t.scalar_type() != d.dtype) {
      // PyTorch's and NumPy's name for it: float32, not float.
      const std::string want = d.dtype == at::kFloat ? "float32" : dtype_str(d.dtype);
      throw ShapeError(fmt::format(
          "input '{}' holds {} values; the model takes {}\n"
          "  fix: convert it to {} first: x.to(torch.{}) in PyTorch, x.astype('{}') in NumPy",
          d.name, dtype_str(t.scalar_type()), d.type_str(), want, want, want));
    }
  }
}

}  // namespace stitch
