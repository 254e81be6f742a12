#include "stitch/inspect.h"

#include <fmt/format.h>
#include <fnmatch.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/version.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "artifact/metadata.h"
#include "build/builder.h"
#include "core/value_json.h"
#include "load/surgery.h"
#include "ops/expression_text.h"
#include "stitch/bind_inputs.h"
#include "stitch/compat.h"
#include "stitch/runtime.h"
#include "util/deadline.h"

namespace stitch {

std::string ModuleRow::training() const {
  if (parameters == 0) return "";
  if (trainable == parameters) return "trainable";
  if (trainable == 0) return "frozen";
  return "partly frozen";
}

namespace {

/// "Conv2d" from __torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d.
std::string short_type(const torch::jit::Module& m) {
  auto name = m.type()->name();
  return name ? name->name() : "Module";
}

/// "stitch 0.1.0, LibTorch 1.13.0" from a stitch artifact's manifest; "" for
/// another TorchScript file.
std::string built_with(const torch::jit::Module& m) {
  const auto manifest = nlohmann::json::parse(stored_metadata(m).manifest_json, nullptr, false);
  if (!manifest.is_object()) return "";
  auto field = [&](const char* key) {
    const auto it = manifest.find(key);
    return it != manifest.end() && it->is_string() ? it->get<std::string>() : std::string("?");
  };
  return fmt::format("stitch {}, LibTorch {}", field("stitch_version"), field("libtorch_version"));
}

/// Forward's argument list completed with defaults (wav2vec2's lengths).
std::vector<c10::IValue> with_defaults(const torch::jit::Module& m,
                                       const std::vector<c10::IValue>& inputs) {
  const auto& args = m.get_method("forward").function().getSchema().arguments();
  std::vector<c10::IValue> stack{m._ivalue()};
  for (size_t i = 1; i < args.size(); ++i) {
    if (i - 1 < inputs.size()) {
      stack.push_back(inputs[i - 1]);
    } else if (args[i].default_value()) {
      stack.push_back(*args[i].default_value());
    } else {
      throw ModelError(fmt::format("the model's forward takes {}, {} given",
                                   detail::count_of(static_cast<int64_t>(args.size()) - 1, "input"),
                                   inputs.size()));
    }
  }
  return stack;
}

/// Runs the graph that returns every submodule's output (one pass).
/// `who` names the model in the error when the run does not return.
std::map<std::string, ValueType> run_outputs(const std::string& who, const torch::jit::Module& m,
                                             const std::vector<c10::IValue>& inputs, int depth,
                                             std::optional<ValueType>& model_output) {
  SubmoduleOutputs outs = submodule_outputs(m, "forward", depth);
  torch::jit::GraphFunction fn("stitch_inspect", outs.graph, nullptr);
  auto stack = with_defaults(m, inputs);
  torch::NoGradGuard no_grad;
  detail::Deadline deadline(probe_seconds(), [&] {
    return fmt::format(
        "{} did not return within {:g} s of its example run\n"
        "  fix: if it is only slow, let it run longer: STITCH_PROBE_SECONDS=600 (0: no limit)",
        who, probe_seconds());
  });
  with_context("running the model", [&] { fn.run(stack); });
  const auto& values = stack.at(0).toTupleRef().elements();
  std::map<std::string, ValueType> types;
  for (size_t i = 0; i < outs.paths.size(); ++i) types[outs.paths[i]] = value_type(values[i]);
  model_output = value_type(values.back());
  return types;
}

/// Rows for `m`'s submodules, paths prefixed with `prefix`.
std::vector<ModuleRow> module_rows(const torch::jit::Module& m, int depth,
                                   const std::function<bool(const std::string&)>& frozen,
                                   const std::map<std::string, ValueType>& outputs,
                                   const std::string& prefix) {
  std::vector<ModuleRow> rows;
  for (const auto& sub : m.named_modules()) {
    if (sub.name.empty()) continue;
    ModuleRow row;
    row.depth = 1 + static_cast<int>(std::count(sub.name.begin(), sub.name.end(), '.'));
    if (depth >= 0 && row.depth > depth) continue;
    row.path = prefix + sub.name;
    row.type = short_type(sub.value);
    for (const auto& p : sub.value.named_parameters(true)) {
      row.parameters += p.value.numel();
      if (!frozen(sub.name + "." + p.name)) row.trainable += p.value.numel();
    }
    auto it = outputs.find(sub.name);
    if (it != outputs.end()) row.output = it->second;
    row.depth += prefix.empty() ? 0 : 1;
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

/// Whether every symbol of `d` has a value.
bool all_bound(const Dim& d, const std::map<std::string, int64_t>& values) {
  return std::all_of(d.symbols().begin(), d.symbols().end(),
                     [&](const std::string& s) { return values.count(s) > 0; });
}

/// The symbols of the declared input shapes, bound to the sizes given.
std::map<std::string, int64_t> bind_sizes(const Graph& graph, const InputSizes& sizes) {
  std::map<std::string, int64_t> values;
  std::vector<std::string> names, written;
  for (int id : graph.inputs()) names.push_back(graph.nodes()[id].name);
  for (const auto& [name, dims] : sizes) written.push_back(name);
  (void)bind_input_names("the spec", names, written);  // the names must be the spec's
  for (int id : graph.inputs()) {
    const Node& n = graph.nodes()[id];
    auto it = sizes.find(n.name);
    if (it == sizes.end()) continue;
    const std::vector<int64_t>& dims = it->second;
    auto refuse = [&](const std::string& why) {
      throw ShapeError(fmt::format("{}input '{}' is declared {}, the size given is {}: {}",
                                   n.loc.prefix(), n.name, shape_str(n.shape), fmt::join(dims, "x"),
                                   why));
    };
    if (dims.size() != n.shape.size()) {
      refuse(fmt::format("{} dims, not {}", dims.size(), n.shape.size()));
    }
    for (size_t i = 0; i < dims.size(); ++i) {  // plain symbols (N) first
      const Dim& d = n.shape[i];
      if (d.symbols().size() != 1 || d.coefficient() != 1) continue;
      auto [bound, added] = values.emplace(d.symbols()[0], dims[i]);
      if (!added && bound->second != dims[i]) {
        refuse(fmt::format("{} is already {}", bound->first, bound->second));
      }
    }
    for (size_t i = 0; i < dims.size(); ++i) {  // then sizes and products (2*N)
      const Dim& d = n.shape[i];
      if (all_bound(d, values) && d.evaluate(values) != dims[i]) {
        refuse(fmt::format("dim {} is {}, not {}", i, d.evaluate(values), dims[i]));
      }
    }
  }
  return values;
}

/// The size a dim has where inspect runs the models: the one given, else
/// N=1 and 16 for any other dynamic dim.
int64_t run_size(const Dim& d, const std::map<std::string, int64_t>& bound) {
  std::map<std::string, int64_t> values;
  for (const auto& s : d.symbols()) {
    auto it = bound.find(s);
    values[s] = it != bound.end() ? it->second : s == "N" ? 1 : 16;
  }
  return d.evaluate(values);
}

/// `t` with every dim whose symbols are all bound replaced by its size.
ValueType with_sizes(ValueType t, const std::map<std::string, int64_t>& values) {
  for (Dim& d : t.shape) {
    if (!d.is_static() && all_bound(d, values)) d = Dim(d.evaluate(values));
  }
  for (ValueType& e : t.elements) e = with_sizes(std::move(e), values);
  return t;
}

/// The built-in layers (linear, conv, an adapter's projection, ...): rows
/// beside the models', as the combined model's submodules, built as compose
/// builds them. They always train.
void add_layer_rows(const Graph& graph, Analysis analysis,
                    const std::map<std::string, int64_t>& bound, InspectReport& report) {
  LayerNodes layer_nodes;
  const std::vector<ValueType> types = analysis.types;
  const torch::jit::Module built = build(graph, std::move(analysis), BuildOptions(), &layer_nodes);
  std::vector<std::pair<int, std::string>> in_graph_order;
  for (const auto& [name, id] : layer_nodes) in_graph_order.emplace_back(id, name);
  std::sort(in_graph_order.begin(), in_graph_order.end());
  for (const auto& [id, name] : in_graph_order) {
    const torch::jit::Module layer = built.attr(name).toModule();
    ModuleRow row;
    row.path = name;
    row.type = short_type(layer);
    // At the sizes the models' rows are shown at.
    ValueType output = types.at(id);
    for (Dim& d : output.shape) d = Dim(run_size(d, bound));
    row.output = output;
    for (const auto& p : layer.parameters(true)) row.parameters += p.numel();
    row.trainable = row.parameters;
    report.parameters += row.parameters;
    report.trainable += row.trainable;
    report.modules.push_back(std::move(row));
  }
}

}  // namespace

InspectReport inspect_module(torch::jit::Module module, const std::vector<c10::IValue>& inputs,
                             int depth) {
  module.eval();
  InspectReport report;
  std::map<std::string, ValueType> outputs;
  if (!inputs.empty()) {
    const auto& args = module.get_method("forward").function().getSchema().arguments();
    for (size_t i = 0; i < inputs.size(); ++i) {
      report.inputs.emplace_back(i + 1 < args.size() ? args[i + 1].name() : "?",
                                 value_type(inputs[i]));
    }
    outputs = run_outputs("the model", module, inputs, depth, report.output);
  }
  // A file's own requires_grad flags say what trains.
  std::map<std::string, bool> requires_grad;
  for (const auto& p : module.named_parameters(true))
    requires_grad[p.name] = p.value.requires_grad();
  auto frozen = [&](const std::string& name) { return !requires_grad[name]; };
  report.modules = module_rows(module, depth, frozen, outputs, "");
  for (const auto& p : module.named_parameters(true)) {
    report.parameters += p.value.numel();
    if (p.value.requires_grad()) report.trainable += p.value.numel();
  }
  report.compat_operators = compat_operators_used(module);
  report.built_with = built_with(module);
  return report;
}

InspectReport inspect_graph(const Graph& graph, int depth, const InputSizes& sizes) {
  InspectReport report;
  Analysis a = analyze(graph);
  const std::map<std::string, int64_t> bound = bind_sizes(graph, sizes);
  report.nodes = node_reports(graph, a);
  for (NodeReport& r : report.nodes) r.type = with_sizes(std::move(r.type), bound);
  for (int id : graph.inputs()) {
    report.inputs.emplace_back(graph.nodes()[id].name, with_sizes(a.types[id], bound));
  }
  std::set<std::string> compat;
  for (const auto& name : graph.model_order()) {
    Component& c = a.components.at(name);
    const ModelSpec& spec = c.spec;
    for (auto& op : compat_operators_used(c.module)) compat.insert(std::move(op));
    // What the graph feeds the model first, at the sizes given, else at
    // N=1 (other dynamic dims 16).
    std::vector<c10::IValue> inputs;
    for (const auto& n : graph.nodes()) {
      if (n.kind != Node::Kind::Call || n.op != name) continue;
      for (const auto& arg : n.args) {
        const ValueType& t = a.types.at(std::get<Value>(arg).id());
        if (!t.is_tensor()) break;
        std::vector<int64_t> dims;
        for (const auto& d : t.shape) dims.push_back(run_size(d, bound));
        inputs.push_back(torch::randn(dims).to(t.dtype));
      }
      break;
    }
    auto frozen = [&](const std::string& param) {
      if (spec.freeze_all) return true;
      for (const auto& glob : spec.freeze) {
        if (fnmatch(glob.c_str(), param.c_str(), 0) == 0) return true;
      }
      return false;
    };
    ModuleRow top;
    top.path = name;
    top.type = short_type(c.module);
    for (const auto& p : c.module.named_parameters(true)) {
      top.parameters += p.value.numel();
      if (!frozen(p.name)) top.trainable += p.value.numel();
    }
    std::map<std::string, ValueType> outputs;
    if (!inputs.empty() && spec.method == "forward") {
      std::optional<ValueType> out;
      outputs = run_outputs(fmt::format("model '{}' ({})", name, spec.describe()), c.module, inputs,
                            depth < 0 ? -1 : std::max(0, depth - 1), out);
      top.output = out;
    }
    report.parameters += top.parameters;
    report.trainable += top.trainable;
    report.modules.push_back(top);
    if (depth < 0 || depth > 1) {
      for (auto& row :
           module_rows(c.module, depth < 0 ? -1 : depth - 1, frozen, outputs, name + ".")) {
        report.modules.push_back(std::move(row));
      }
    }
  }
  report.compat_operators.assign(compat.begin(), compat.end());
  if (graph.outputs().size() == 1) {
    report.output = with_sizes(a.types.at(graph.outputs()[0].second.id()), bound);
  }
  add_layer_rows(graph, std::move(a), bound, report);
  if (!bound.count("N")) report.note = "output shapes in the rows are for N=1";
  return report;
}

std::string InspectReport::table() const {
  size_t path_w = 4, type_w = 4, out_w = 6;
  auto out_str = [](const ModuleRow& r) { return r.output ? r.output->str() : "-"; };
  for (const auto& r : modules) {
    path_w = std::max(path_w, r.path.size() + 2 * (r.depth - 1));
    type_w = std::max(type_w, r.type.size());
    out_w = std::max(out_w, out_str(r).size());
  }
  std::string text;
  for (const auto& [name, t] : inputs) text += fmt::format("input {}: {}\n", name, t.str());
  text += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>12}  {}\n", "path", path_w, "type", type_w,
                      "output", out_w, "parameters", "training");
  for (const auto& r : modules) {
    std::string path = std::string(2 * (r.depth - 1), ' ') + r.path;
    text += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>12}  {}\n", path, path_w, r.type, type_w,
                        out_str(r), out_w, r.parameters ? with_commas(r.parameters) : "-",
                        r.training());
  }
  if (output) text += fmt::format("output: {}\n", output->str());
  if (!nodes.empty()) {
    CheckReport graph_nodes;
    graph_nodes.nodes = nodes;
    text += "\n" + graph_nodes.table();
  }
  text += fmt::format("total parameters: {} (trainable {}, frozen {})\n", with_commas(parameters),
                      with_commas(trainable), with_commas(parameters - trainable));
  if (!built_with.empty()) text += "built with: " + built_with + "\n";
  if (!compat_operators.empty()) {
    text += fmt::format(
        "compatibility operators: {} (from PyTorch 2.x; stitch adds them to LibTorch {}, "
        "see docs/compatibility.md)\n",
        fmt::join(compat_operators, ", "), TORCH_VERSION);
  }
  if (!note.empty()) text += "note: " + note + "\n";
  return text;
}

std::string InspectReport::json() const {
  using detail::dtype_json, detail::shape_json, detail::type_json;
  nlohmann::json j;
  j["inputs"] = nlohmann::json::array();
  for (const auto& [name, t] : inputs) {
    j["inputs"].push_back(
        {{"name", name}, {"type", t.str()}, {"shape", shape_json(t)}, {"dtype", dtype_json(t)}});
  }
  j["modules"] = nlohmann::json::array();
  for (const auto& r : modules) {
    j["modules"].push_back({{"path", r.path},
                            {"type", r.type},
                            {"depth", r.depth},
                            {"output", type_json(r.output)},
                            {"shape", shape_json(r.output)},
                            {"dtype", dtype_json(r.output)},
                            {"parameters", r.parameters},
                            {"trainable", r.trainable},
                            {"training", r.training()}});
  }
  j["output"] = type_json(output);
  j["output_shape"] = shape_json(output);
  j["output_dtype"] = dtype_json(output);
  j["nodes"] = nlohmann::json::array();
  for (const auto& n : nodes) {
    j["nodes"].push_back({{"name", n.name},
                          {"expression", n.expression},
                          {"type", n.type.str()},
                          {"shape", shape_json(n.type)},
                          {"dtype", dtype_json(n.type)},
                          {"note", n.note}});
  }
  j["total"] = {
      {"parameters", parameters}, {"trainable", trainable}, {"frozen", parameters - trainable}};
  j["compat_operators"] = compat_operators;
  if (!built_with.empty()) j["built_with"] = built_with;
  if (!note.empty()) j["note"] = note;
  return detail::dump_json(j);
}

}  // namespace stitch
