#include "stitch/verify.h"

#include <fmt/format.h>
#include <torch/script.h>

#include <cmath>
#include <map>
#include <set>

#include "artifact/metadata.h"
#include "check/example_inputs.h"
#include "core/value_json.h"
#include "load/component.h"
#include "stitch/artifact.h"
#include "stitch/build.h"
#include "stitch/spec.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace stitch {

bool VerifyReport::ok() const {
  for (const auto& o : outputs) {
    if (!o.ok) return false;
  }
  return true;
}

std::string VerifyReport::table() const {
  std::string out;
  for (const auto& o : outputs) {
    out += fmt::format("{}  [{}]  max abs diff {:.3g}  {}\n", o.name, fmt::join(o.shape, ", "),
                       o.max_abs_diff, o.ok ? "ok" : "DIFFERS");
  }
  for (const auto& note : notes) out += "note: " + note + "\n";
  return out;
}

std::string VerifyReport::json() const {
  nlohmann::json j;
  j["ok"] = ok();
  j["rtol"] = rtol;
  j["atol"] = atol;
  j["outputs"] = nlohmann::json::array();
  for (const auto& o : outputs) {
    j["outputs"].push_back({{"name", o.name},
                            {"shape", o.shape},
                            {"max_abs_diff", detail::number_json(o.max_abs_diff)},
                            {"ok", o.ok}});
  }
  j["notes"] = notes;
  return detail::dump_json(j);
}

namespace {

using TensorsByName = std::map<std::string, torch::Tensor>;

std::string sizes_str(c10::IntArrayRef sizes) {
  return fmt::format("[{}]", fmt::join(sizes.vec(), ", "));
}

TensorsByName named_tensors(const torch::jit::Module& m) {
  TensorsByName out;
  for (const auto& p : m.named_parameters(true)) out[p.name] = p.value;
  for (const auto& b : m.named_buffers(true)) out[b.name] = b.value;
  return out;
}

/// The learned built-in layers (everything outside the components) take
/// their weights from the artifact: they were trained or initialized there,
/// and only the components have files to compare against.
void copy_builtin_weights(const torch::jit::Module& artifact, torch::jit::Module& rebuilt,
                          const std::set<std::string>& components, const fs::path& file) {
  const TensorsByName from = named_tensors(artifact);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : named_tensors(rebuilt)) {
    if (components.count(name.substr(0, name.find('.')))) continue;
    auto it = from.find(name);
    if (it == from.end()) {
      throw VerifyError(fmt::format(
          "{} was not built from this spec: it has no '{}', which the spec's layers have",
          file.string(), name));
    }
    if (!it->second.sizes().equals(tensor.sizes())) {
      throw VerifyError(fmt::format(
          "{} was not built from this spec: its '{}' is {}, the spec's is {}", file.string(), name,
          sizes_str(it->second.sizes()), sizes_str(tensor.sizes())));
    }
    tensor.copy_(it->second);
  }
}

/// Example inputs of the spec's declared shapes (example_inputs.h), every
/// dynamic dim at `size`.
std::vector<c10::IValue> random_inputs(const Graph& g, const VerifyOptions& options) {
  std::map<std::string, int64_t> dims;
  std::vector<ExampleSlot> slots;
  for (int id : g.inputs()) {
    for (const auto& d : g.nodes()[id].shape) {
      for (const auto& s : d.symbols()) dims[s] = options.dynamic_size();
    }
  }
  for (int id : g.inputs()) {
    const Node& n = g.nodes()[id];
    ExampleSlot slot{n.name, {}, n.dtype, std::nullopt};
    for (const auto& d : n.shape) slot.sizes.push_back(d.evaluate(dims));
    if (n.probe) slot.probe = n.probe->evaluate(dims);
    slots.push_back(std::move(slot));
  }
  auto tensors = example_tensors(slots, at::make_generator<at::CPUGeneratorImpl>(options.seed()));
  return {tensors.begin(), tensors.end()};
}

TensorsByName outputs_by_name(const c10::IValue& out, const Graph& g) {
  TensorsByName result;
  if (out.isTensor()) {
    result[g.outputs().at(0).first] = out.toTensor();
  } else if (out.isGenericDict()) {
    for (const auto& item : out.toGenericDict()) {
      result[item.key().toStringRef()] = item.value().toTensor();
    }
  } else {
    throw VerifyError("the artifact returns " + out.tagKind() +
                      ", not a tensor or a dict of tensors");
  }
  return result;
}

/// A component whose weights in the artifact are not those of its file: how
/// many differ, and the first. Nothing for an artifact without weights of
/// its own (--optimize folds them into its code).
std::vector<std::string> changed_weights(const TensorsByName& saved,
                                         const torch::jit::Module& rebuilt,
                                         const std::set<std::string>& components) {
  std::vector<std::string> notes;
  if (saved.empty()) return notes;
  std::map<std::string, std::pair<int64_t, int64_t>> differ;  // differing, all
  std::map<std::string, std::string> first;
  for (const auto& [name, tensor] : named_tensors(rebuilt)) {
    const std::string component = name.substr(0, name.find('.'));
    if (!components.count(component)) continue;
    auto& [count, all] = differ[component];
    ++all;
    auto it = saved.find(name);
    if (it != saved.end() && it->second.sizes().equals(tensor.sizes()) &&
        it->second.scalar_type() == tensor.scalar_type() && torch::equal(it->second, tensor)) {
      continue;
    }
    if (count++ == 0) first[component] = name;
  }
  for (const auto& [component, counts] : differ) {
    if (counts.first == 0) continue;
    notes.push_back(fmt::format(
        "{}'s weights in the artifact differ from its file's: {} of {} tensors, the first "
        "'{}' (trained after composing, or the file changed)",
        component, counts.first, counts.second, first[component]));
  }
  return notes;
}

/// Component files whose sha256 differs from the one the manifest recorded.
std::vector<std::string> changed_files(const std::string& manifest_json, const Graph& g) {
  std::vector<std::string> notes;
  if (manifest_json.empty()) return notes;
  for (const auto& c : recorded_components(manifest_json)) {
    const std::string& name = c.name;
    if (!g.models().count(name)) continue;
    const ModelSpec& spec = g.model(name);
    const std::optional<std::string> identity = source_identity(spec);
    if (identity && *identity != c.sha256) {
      notes.push_back(
          fmt::format("{} ({}) has changed since the artifact was saved "
                      "(its sha256 differs from the manifest's)",
                      name, spec.merge.empty() ? spec.file.filename().string() : spec.describe()));
    }
  }
  return notes;
}

}  // namespace

VerifyReport verify(const fs::path& artifact, const fs::path& spec, const VerifyOptions& options) {
  torch::jit::Module saved = load_module(artifact);
  saved.eval();
  const ArtifactMetadata meta = read_metadata(artifact);
  Spec s = load_spec(spec);
  torch::jit::Module rebuilt = build(s.graph);
  rebuilt.eval();
  std::set<std::string> components;
  for (const auto& [name, m] : s.graph.models()) components.insert(name);
  const TensorsByName saved_tensors = named_tensors(saved);

  VerifyReport report;
  report.rtol = options.rtol();
  report.atol = options.atol();
  report.notes = changed_files(meta.manifest_json, s.graph);
  if (saved_tensors.empty() && !named_tensors(rebuilt).empty()) {
    report.notes.push_back(
        "the artifact keeps its weights in its code (compose --optimize): its learned layers are "
        "compared with the spec's seeded initial weights");
  } else {
    copy_builtin_weights(saved, rebuilt, components, artifact);
    const auto trained = changed_weights(saved_tensors, rebuilt, components);
    report.notes.insert(report.notes.end(), trained.begin(), trained.end());
  }
  const auto inputs = random_inputs(s.graph, options);
  torch::NoGradGuard no_grad;
  const TensorsByName expected = outputs_by_name(rebuilt.forward(inputs), s.graph);
  const TensorsByName got = with_context("running " + artifact.string(), [&] {
    return outputs_by_name(saved.forward(inputs), s.graph);
  });
  for (const auto& [name, value] : s.graph.outputs()) {
    (void)value;
    auto it = got.find(name);
    if (it == got.end()) {
      throw VerifyError(
          fmt::format("{} has no output '{}', which the spec declares", artifact.string(), name));
    }
    const torch::Tensor& a = it->second;
    const torch::Tensor& b = expected.at(name);
    OutputComparison c;
    c.name = name;
    c.shape = b.sizes().vec();
    if (!a.sizes().equals(b.sizes())) {
      throw VerifyError(fmt::format("output '{}' of {} is {}, its parts give {}", name,
                                    artifact.string(), sizes_str(a.sizes()), sizes_str(b.sizes())));
    }
    const auto diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs();
    c.max_abs_diff = diff.numel() ? diff.max().item<double>() : 0.0;
    c.ok = torch::allclose(a, b, options.rtol(), options.atol(), /*equal_nan=*/true);
    report.outputs.push_back(c);
    if (!c.ok) {
      std::string detail;
      for (const auto& note : report.notes) detail += "\n  note: " + note;
      throw VerifyError(fmt::format(
          "{} differs from its parts: output '{}' {} differs by up to {:.6g} (max abs "
          "diff; tolerance atol {:g} + rtol {:g} * |value|){}\n"
          "  the parts: {}'s models from their files, its learned layers' weights from the "
          "artifact",
          artifact.string(), name, sizes_str(c.shape), c.max_abs_diff, options.atol(),
          options.rtol(), detail, spec.string()));
    }
  }
  return report;
}

}  // namespace stitch
