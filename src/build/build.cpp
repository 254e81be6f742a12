#include "stitch/build.h"

#include <fmt/format.h>
#include <fnmatch.h>
#include <torch/csrc/jit/frontend/resolver.h>

#include <algorithm>
#include <set>

#include "artifact/fold_weights.h"
#include "artifact/metadata.h"
#include "build/builder.h"
#include "build/schedule.h"
#include "build/small_matmul.h"
#include "check/adapt_target.h"
#include "check/simplify.h"
#include "core/assert.h"
#include "ops/registry.h"

namespace stitch {

namespace {

std::string join(const std::vector<std::string>& parts, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

/// Stops training the parameters the spec freezes.
void freeze_parameters(torch::jit::Module& module, const ModelSpec& spec) {
  if (!spec.freeze_all && spec.freeze.empty()) return;
  std::vector<std::string> names;
  std::set<std::string> matched;
  for (const auto& p : module.named_parameters(true)) {
    names.push_back(p.name);
    bool hit = spec.freeze_all;
    for (const auto& glob : spec.freeze) {
      if (fnmatch(glob.c_str(), p.name.c_str(), 0) == 0) {
        hit = true;
        matched.insert(glob);
      }
    }
    if (hit) p.value.set_requires_grad(false);
  }
  for (const auto& glob : spec.freeze) {
    if (!matched.count(glob)) {
      std::string sample = names.empty() ? "(none)" : names.front();
      throw SpecError(fmt::format(
          "{}model '{}': freeze pattern '{}' matches no parameter\n"
          "  its parameters are named like {} ({} in all; `stitch inspect {}` lists them)",
          spec.loc.prefix(), spec.name, glob, sample, names.size(), spec.file.filename().string()));
    }
  }
}

/// Module::define's default names (`torch`) plus `fork`, which TorchScript
/// knows as a special form but only offers through the resolver.
struct ForkResolver : torch::jit::NativeResolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(
      const std::string& name, torch::jit::GraphFunction& m,
      const torch::jit::SourceRange& loc) override {
    if (name == "fork") return torch::jit::SpecialFormValue::create(c10::prim::fork);
    return NativeResolver::resolveValue(name, m, loc);
  }
};

class Builder {
 public:
  Builder(const Graph& graph, Analysis analysis)
      : g_(graph),
        a_(std::move(analysis)),
        cu_(std::make_shared<torch::jit::CompilationUnit>()),
        top_(new_module(cu_, "Combined")) {
    layers_.cu = cu_;
    layers_.generator = at::make_generator<at::CPUGeneratorImpl>(graph.seed);
  }

  torch::jit::Module run(const BuildOptions& options) {
    for (const auto& name : g_.model_order()) {
      Component& c = a_.components.at(name);
      freeze_parameters(c.module, c.spec);
      const bool fold = options.training() && options.fold_frozen() && c.spec.freeze_all;
      top_.register_module(name,
                           fold ? detail::fold_frozen_model(c.module, c.spec.method) : c.module);
      attributes_.insert(name);
    }
    std::vector<std::string> params;
    for (int id : g_.inputs()) {
      params.push_back(g_.nodes()[id].name + ": Tensor");
    }
    const bool single = g_.outputs().size() == 1;
    std::string code = fmt::format("def forward(self, {}) -> {}:\n", join(params),
                                   single ? "Tensor" : "Dict[str, Tensor]");
    for (const Step& step : schedule(g_, a_.simple, options.concurrent(), model_weights())) {
      code += "  " + emit(step) + "\n";
    }
    if (single) {
      code += fmt::format("  return {}\n", var(g_.outputs()[0].second.id()));
    } else {
      std::vector<std::string> items;
      for (const auto& [name, v] : g_.outputs()) {
        items.push_back(fmt::format("\"{}\": {}", name, var(v.id())));
      }
      code += fmt::format("  return {{{}}}\n", join(items));
    }
    with_context("building the combined forward",
                 [&] { top_.define(code, std::make_shared<ForkResolver>()); });
    attach_metadata(top_, g_, a_);
    if (options.training() && options.small_matmul()) detail::use_small_matmul(top_);
    if (options.training()) {
      top_.train();
    } else {
      top_.eval();
    }
    return top_;
  }

  /// The built-in layers' submodule names, with the node each was made for.
  const LayerNodes& layer_nodes() const { return layer_nodes_; }

 private:
  /// Parameter counts: how the scheduler tells a large model from a small one.
  ModelWeights model_weights() const {
    ModelWeights weights;
    for (const auto& [name, c] : a_.components) {
      int64_t count = 0;
      for (const auto& p : c.module.parameters()) count += p.numel();
      weights[name] = count;
    }
    return weights;
  }

  /// The variable holding a node's value: the node it is the same as.
  std::string var(size_t id) const {
    const int of = a_.simple.same_as.at(id);
    const Node& n = g_.nodes()[of];
    return n.name.empty() ? fmt::format("_{}", of) : n.name;
  }

  std::string arg(const Node& n, size_t i) const {
    const auto& a = n.args.at(i);
    if (const auto* v = std::get_if<Value>(&a)) return var(v->id());
    return float_text(std::get<Literal>(a));
  }

  std::vector<std::string> args(const Node& n) const {
    std::vector<std::string> out;
    for (size_t i = 0; i < n.args.size(); ++i) out.push_back(arg(n, i));
    return out;
  }

  const ValueType& type_of(const Node& n, size_t i) const {
    return a_.types.at(std::get<Value>(n.args.at(i)).id());
  }

  const ValueType& first_tensor_type(const Node& n) const {
    for (const auto& a : n.args) {
      if (const auto* v = std::get_if<Value>(&a)) return a_.types.at(v->id());
    }
    throw ShapeError(n.loc.prefix() + n.op + " has no tensor argument");
  }

  /// A submodule name for a layer node: its spec name, or the name of the
  /// statement it is nested in plus the op.
  std::string layer_name(int id) {
    const Node& n = g_.nodes()[id];
    std::string base = n.name;
    if (base.empty()) {
      base = n.op;
      for (size_t later = id + 1; later < g_.nodes().size(); ++later) {
        if (!g_.nodes()[later].name.empty() && g_.nodes()[later].kind != Node::Kind::Input) {
          base = g_.nodes()[later].name + "_" + n.op;
          break;
        }
      }
    }
    std::string name = base;
    for (int k = 2; attributes_.count(name) || name == "training"; ++k) {
      name = fmt::format("{}_{}", base, k);
    }
    attributes_.insert(name);
    layer_nodes_[name] = id;
    return name;
  }

  /// One statement: `x = expr`, `fx = fork(self.m.forward, args)` (a model
  /// call started on LibTorch's inter-op thread pool) or `x = torch.wait(fx)`.
  std::string emit(const Step& step) {
    const Node& n = g_.nodes()[step.node];
    const std::string x = var(step.node);
    switch (step.kind) {
      case Step::Kind::Run:
        return fmt::format("{} = {}", x, emit(step.node));
      case Step::Kind::Fork: {
        std::vector<std::string> call = args(n);
        call.insert(call.begin(),
                    fmt::format("self.{}.{}", n.op, a_.components.at(n.op).spec.method));
        return fmt::format("{} = fork({})", future_var(step.node), join(call));
      }
      case Step::Kind::Wait:
        return fmt::format("{} = torch.wait({})", x, future_var(step.node));
    }
    return {};
  }

  /// A name no node has.
  std::string future_var(int id) const {
    std::string name = fmt::format("_fork_{}", id);
    while (std::any_of(g_.nodes().begin(), g_.nodes().end(),
                       [&](const Node& n) { return n.name == name; })) {
      name += "_";
    }
    return name;
  }

  std::string emit(int id) {
    const Node& n = g_.nodes()[id];
    switch (n.kind) {
      case Node::Kind::Input:
        return n.name;
      case Node::Kind::Call:
        return fmt::format("self.{}.{}({})", n.op, a_.components.at(n.op).spec.method,
                           join(args(n)));
      case Node::Kind::Index: {
        const Literal& key = std::get<Literal>(n.args[1]);
        return fmt::format("{}[{}]", arg(n, 0), key.str());
      }
      case Node::Kind::Attr: {
        const ValueType& of = type_of(n, 0);
        if (of.kind == ValueType::Kind::Dict) return fmt::format("{}[\"{}\"]", arg(n, 0), n.op);
        return fmt::format("{}.{}", arg(n, 0), n.op);
      }
      case Node::Kind::Op:
        break;
    }
    if (n.op == "adapt") return emit_adapter(id);
    // Arithmetic may start with a number (2.0 * x): use the first tensor.
    return lower(id, n, args(n), first_tensor_type(n));
  }

  /// An op from the op table: its TorchScript expression, or a call of the
  /// submodule that holds its weights (named like the node, see layer_name).
  std::string lower(int id, const Node& n, std::vector<std::string> xs, const ValueType& input) {
    const OpDef* def = find_op(n.op);
    STITCH_INTERNAL_ASSERT(def != nullptr && (def->lower != nullptr || def->layer != nullptr),
                           "op {} has no lowering", n.op);
    LowerCall call{n, std::move(xs), input};
    if (def->lower != nullptr) return def->lower(call);
    const std::string name = layer_name(id);
    top_.register_module(name, def->layer(call, layers_));
    return fmt::format("self.{}.forward({})", name, call.x());
  }

  /// The adapter check chose, planned again from the same types: shape steps
  /// inline, a learned projection as a submodule named like other layers.
  std::string emit_adapter(int id) {
    const Node& n = g_.nodes()[id];
    ValueType current = type_of(n, 0);
    std::string expr = arg(n, 0);
    auto target = adapt_target(n, a_.components);
    if (!target) return expr;  // check found the model accepts x as it is
    auto plan = plan_adapter(current, *target);
    if (!plan) throw ShapeError(n.loc.prefix() + "adapt: no adapter fits");  // check said so
    for (const auto& step : plan->steps) {
      Node step_node;
      step_node.op = step.op;
      step_node.kwargs = step.kwargs;
      step_node.loc = n.loc;
      expr = lower(id, step_node, {expr}, current);
      current = ValueType::tensor(step.out, current.dtype);
    }
    return expr;
  }

  const Graph& g_;
  Analysis a_;
  std::shared_ptr<torch::jit::CompilationUnit> cu_;
  torch::jit::Module top_;
  LayerContext layers_;
  std::set<std::string> attributes_;
  LayerNodes layer_nodes_;
};

}  // namespace

torch::jit::Module build(const Graph& graph, const BuildOptions& options) {
  return build(graph, analyze(graph), options);
}

torch::jit::Module build(const Graph& graph, const CheckReport& report,
                         const BuildOptions& options) {
  std::optional<Analysis> checked = take_analysis(report, graph);
  // The outputs may have changed since check (take_analysis compares the
  // nodes and models): what runs is worked out again.
  if (checked) checked->simple = simplify(graph);
  return build(graph, checked ? std::move(*checked) : analyze(graph), options);
}

torch::jit::Module build(const Graph& graph, Analysis analysis, const BuildOptions& options,
                         LayerNodes* layer_nodes) {
  Builder builder(graph, std::move(analysis));
  torch::jit::Module module = builder.run(options);
  if (layer_nodes != nullptr) *layer_nodes = builder.layer_nodes();
  return module;
}

torch::jit::Module Graph::build() const {
  return stitch::build(*this);
}

}  // namespace stitch
