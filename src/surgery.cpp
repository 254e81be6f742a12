#include "surgery.h"

#include "op_signatures.h"

#include <fmt/format.h>

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <set>

namespace stitch {

namespace {

using JitNode = torch::jit::Node;
using JitValue = torch::jit::Value;

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

/// Every submodule path of `m` ("layer1", "layer1.0", ...).
std::vector<std::string> module_paths(const torch::jit::Module& m) {
  std::vector<std::string> paths;
  for (const auto& child : m.named_modules()) {
    if (!child.name.empty()) paths.push_back(child.name);
  }
  return paths;
}

/// Checks that PATH names a submodule; ModelError with the nearest names.
void check_path(const Component& c, const std::string& path) {
  torch::jit::Module m = c.module;
  const auto parts = split_path(path);
  std::string walked;
  for (const auto& part : parts) {
    const bool has = m.hasattr(part);
    if (has && m.attr(part).isModule()) {
      m = m.attr(part).toModule();
      walked += (walked.empty() ? "" : ".") + part;
      continue;
    }
    auto paths = module_paths(c.module);
    std::string near = nearest_name(path, paths);
    std::string children;
    for (const auto& child : m.named_children()) {
      children += (children.empty() ? "" : ", ") + child.name;
    }
    throw ModelError(fmt::format(
        "{}model '{}' ({}) has no layer '{}'{}\n"
        "  {} children: {}\n"
        "  fix: {}list every layer with: stitch inspect {}",
        c.spec.loc.prefix(), c.spec.name, c.spec.file.filename().string(), path,
        has ? fmt::format(" ('{}' is not a module)", part) : "",
        walked.empty() ? "its" : walked + "'s", children.empty() ? "(none)" : children,
        near.empty() ? "" : fmt::format("did you mean {}?   ", near),
        c.spec.file.filename().string()));
  }
}

/// The attribute path a module value was read from (self.a.b -> [a, b]).
std::optional<std::vector<std::string>> module_path_of(JitValue* v) {
  std::vector<std::string> path;
  while (v->node()->kind() == c10::prim::GetAttr) {
    path.insert(path.begin(), v->node()->s(c10::attr::name));
    v = v->node()->input(0);
  }
  if (v->node()->kind() != c10::prim::Param) return std::nullopt;
  return path;
}

bool is_prefix(const std::vector<std::string>& prefix, const std::vector<std::string>& of) {
  return prefix.size() <= of.size() && std::equal(prefix.begin(), prefix.end(), of.begin());
}

torch::jit::GraphFunction* callee_of(JitNode* call) {
  auto cls = call->input(0)->type()->expect<c10::ClassType>();
  return &torch::jit::toGraphFunction(cls->getMethod(call->s(c10::attr::name)));
}

/// Inlines method calls on the way to `target` until the calls of target's
/// forward are visible in `graph`; returns them.
std::vector<JitNode*> expose_calls(torch::jit::Graph& graph,
                                const std::vector<std::string>& target) {
  for (int round = 0; round < 64; ++round) {
    std::vector<JitNode*> hits;
    JitNode* to_inline = nullptr;
    for (JitNode* n : torch::jit::findAllNodes(graph, c10::prim::CallMethod, true)) {
      auto path = module_path_of(n->input(0));
      if (!path) continue;
      if (*path == target) {
        hits.push_back(n);
      } else if (is_prefix(*path, target) && to_inline == nullptr) {
        to_inline = n;  // a call on the way down (self._forward_impl, self.backbone)
      }
    }
    if (to_inline == nullptr) return hits;
    // The callee's own graph, not its optimized one: that has every call
    // inlined already, and the layer boundaries we cut at are gone.
    auto* callee = callee_of(to_inline);
    torch::jit::inlineCallTo(to_inline, callee, callee->graph().get());
  }
  return {};
}

std::vector<JitNode*> find_target(Component& c, torch::jit::Graph& graph,
                               const std::string& path) {
  check_path(c, path);
  auto calls = expose_calls(graph, split_path(path));
  if (calls.empty()) {
    throw ModelError(fmt::format(
        "{}model '{}': layer '{}' exists but {} never calls it, so there is no "
        "output to cut at",
        c.spec.loc.prefix(), c.spec.name, path, c.spec.method));
  }
  if (calls.size() > 1) {
    throw ModelError(fmt::format(
        "{}model '{}': layer '{}' is called {} times in {}; cutting there is "
        "ambiguous\n  fix: cut at a layer that is called once",
        c.spec.loc.prefix(), c.spec.name, path, calls.size(), c.spec.method));
  }
  if (calls[0]->owningBlock() != graph.block()) {
    throw ModelError(fmt::format(
        "{}model '{}': layer '{}' is called inside a loop or branch; cannot cut there",
        c.spec.loc.prefix(), c.spec.name, path));
  }
  return calls;
}

/// Replaces the component's method with `graph`, drops methods and
/// top-level children the new graph no longer uses.
void install(Component& c, std::shared_ptr<torch::jit::Graph> graph) {
  torch::jit::EliminateDeadCode(graph);
  auto type = c.module.type();
  std::set<std::string> used;
  for (JitNode* n : torch::jit::findAllNodes(*graph, c10::prim::GetAttr, true)) {
    if (n->input(0) == graph->inputs()[0]) used.insert(n->s(c10::attr::name));
  }
  std::vector<std::string> methods;
  for (auto* fn : type->methods()) methods.push_back(fn->name());
  for (const auto& name : methods) type->unsafeRemoveMethod(name);
  auto cu = c.module._ivalue()->compilation_unit();
  auto name = type->name()->qualifiedName() + ".forward";
  if (cu->find_function(name) != nullptr) cu->unsafeRemoveMethod(name);
  auto* fn = cu->create_function(c10::QualifiedName(name), graph);
  type->addMethod(fn);
  c.spec.method = "forward";
  // Drop children that nothing uses any more (fc after a cut at avgpool).
  std::vector<std::string> unused;
  for (const auto& child : c.module.named_children()) {
    if (!used.count(child.name)) unused.push_back(child.name);
  }
  for (const auto& name : unused) {  // not while iterating: removal shifts slots
    c.module._ivalue()->unsafeRemoveAttr(name);
    type->unsafeRemoveAttribute(name);
  }
}

void cut_at(Component& c, const std::string& path) {
  auto graph = c.module.get_method(c.spec.method).graph()->copy();
  JitNode* call = find_target(c, *graph, path)[0];
  auto* ret = graph->return_node();
  ret->removeAllInputs();
  ret->addInput(call->output());
  // Everything after the call is dead now. DCE alone keeps method calls (they
  // might have side effects), so remove them explicitly, last first.
  while (graph->return_node()->prev() != call) {
    graph->return_node()->prev()->destroy();
  }
  install(c, graph);
}

bool is_plain(JitNode* n) {
  auto k = n->kind();
  return k == c10::prim::GetAttr || k == c10::prim::Constant ||
         k == c10::prim::ListConstruct || k == c10::prim::TupleConstruct;
}

void start_after(Component& c, const std::string& path) {
  auto graph = c.module.get_method(c.spec.method).graph()->copy();
  JitNode* call = find_target(c, *graph, path)[0];
  std::vector<JitNode*> before;
  for (JitNode* n : graph->nodes()) {
    if (n == call) break;
    before.push_back(n);
  }
  JitValue* feature = graph->addInput("features")->setType(call->output()->type());
  call->output()->replaceAllUsesWith(feature);
  call->destroy();
  // The part before the cut is not run any more: drop what the rest does not
  // use, last first. (DCE alone keeps method calls.)
  std::vector<JitNode*> kept;
  for (auto it = before.rbegin(); it != before.rend(); ++it) {
    JitNode* n = *it;
    bool used = false;
    for (JitValue* out : n->outputs()) used = used || out->hasUses();
    if (used) {
      kept.insert(kept.begin(), n);
    } else {
      n->destroy();
    }
  }
  // What is left before the cut must be computable from the model's own
  // inputs (x.shape for a final resize is); anything else crosses the cut.
  std::set<JitValue*> from_inputs(graph->inputs().begin(), graph->inputs().end());
  std::vector<std::string> crossing;
  for (JitNode* n : kept) {
    bool ok = n->kind() != c10::prim::CallMethod && n->blocks().empty();
    for (JitValue* in : n->inputs()) ok = ok && (from_inputs.count(in) || is_plain(in->node()));
    for (JitValue* out : n->outputs()) {
      if (ok || is_plain(n)) {
        from_inputs.insert(out);
      } else {
        crossing.push_back("%" + out->debugName());
      }
    }
  }
  if (!crossing.empty()) {
    std::string names;
    for (const auto& s : crossing) names += (names.empty() ? "" : ", ") + s;
    throw ModelError(fmt::format(
        "{}model '{}': cannot start after '{}': the rest of {} also uses values "
        "computed before it ({}) — a skip connection across the cut\n"
        "  fix: split at a layer that no skip connection crosses",
        c.spec.loc.prefix(), c.spec.name, path, c.spec.method, names));
  }
  // Inputs in order: self, features, then the original inputs still used.
  auto inputs = graph->inputs().vec();
  std::vector<JitValue*> originals(inputs.begin() + 1, inputs.end() - 1);
  auto reordered = std::make_shared<torch::jit::Graph>();
  std::unordered_map<JitValue*, JitValue*> map;
  map[inputs[0]] = reordered->addInput("self")->setType(inputs[0]->type());
  map[feature] = reordered->addInput("features")->setType(feature->type());
  for (JitValue* v : originals) {
    if (v->hasUses()) {
      map[v] = reordered->addInput(v->debugNameBase())->setType(v->type());
    }
  }
  std::vector<JitValue*> args;
  for (JitValue* v : inputs) {
    // Unused inputs get any value: nothing reads them.
    args.push_back(map.count(v) ? map[v] : map[inputs[0]]);
  }
  auto outs = torch::jit::insertGraph(*reordered, *graph, args);
  for (JitValue* o : outs) reordered->registerOutput(o);
  install(c, reordered);
}

}  // namespace

void apply_surgery(Component& c) {
  const auto& s = c.spec;
  if (!s.taps.empty()) {
    throw ModelError(fmt::format("{}model '{}': taps are not supported yet",
                                 s.loc.prefix(), s.name));
  }
  if (!s.cut.empty()) cut_at(c, s.cut);
  if (!s.after.empty()) start_after(c, s.after);
}

}  // namespace stitch
