#include "load/surgery.h"

#include <fmt/format.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/frontend/inline_loop_condition.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "core/nearest_name.h"

namespace stitch {

namespace {

using JitNode = torch::jit::Node;
using JitValue = torch::jit::Value;
using JitGraph = torch::jit::Graph;
using Path = std::vector<std::string>;

Path split_path(const std::string& path) {
  Path parts;
  size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join_path(const Path& path) {
  std::string out;
  for (const auto& part : path) out += (out.empty() ? "" : ".") + part;
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// Every submodule path of `m` ("layer1", "layer1.0", ...).
std::vector<std::string> module_paths(const torch::jit::Module& m) {
  std::vector<std::string> paths;
  for (const auto& child : m.named_modules()) {
    if (!child.name.empty()) paths.push_back(child.name);
  }
  return paths;
}

/// "a parameter", "a buffer", "an int attribute" for `name` on `m`.
std::string attribute_kind(const torch::jit::Module& m, const std::string& name) {
  auto type = m.type();
  if (type->hasAttribute(name)) {
    if (type->is_parameter(type->getAttributeSlot(name))) return "a parameter";
    if (type->is_buffer(type->getAttributeSlot(name))) return "a buffer";
    return fmt::format("a {} attribute", type->getAttribute(name)->annotation_str());
  }
  return "not a module";
}

/// Checks that PATH names a submodule; ModelError with the nearest names, or
/// saying what PATH is when it names a parameter or another attribute.
void check_path(const Component& c, const std::string& path) {
  torch::jit::Module m = c.module;
  std::string walked;
  const std::string file = c.spec.file.filename().string();
  for (const auto& part : split_path(path)) {
    const bool has = !part.empty() && m.hasattr(part);
    if (has && m.attr(part).isModule()) {
      m = m.attr(part).toModule();
      walked += (walked.empty() ? "" : ".") + part;
      continue;
    }
    if (has) {
      throw ModelError(
          fmt::format("{}model '{}' ({}): '{}' is {}, not a layer; cut, after and taps take "
                      "the path of a module\n"
                      "  fix: use the module that holds it{}; list every layer with: stitch "
                      "inspect {}",
                      c.spec.loc.prefix(), c.spec.name, file, path, attribute_kind(m, part),
                      walked.empty() ? "" : fmt::format(" ('{}')", walked), file));
    }
    std::string near = nearest_name(path, module_paths(c.module));
    std::vector<std::string> children;
    for (const auto& child : m.named_children()) children.push_back(child.name);
    throw ModelError(fmt::format(
        "{}model '{}' ({}) has no layer '{}'\n"
        "  {} children: {}\n"
        "  fix: {}list every layer with: stitch inspect {}",
        c.spec.loc.prefix(), c.spec.name, file, path, walked.empty() ? "its" : walked + "'s",
        children.empty() ? "(none)" : join(children),
        near.empty() ? "" : fmt::format("did you mean {}?   ", near), file));
  }
}

/// The attribute path a module value was read from (self.a.b -> [a, b]).
std::optional<Path> module_path_of(JitValue* v) {
  Path path;
  while (v->node()->kind() == c10::prim::GetAttr) {
    path.insert(path.begin(), v->node()->s(c10::attr::name));
    v = v->node()->input(0);
  }
  if (v->node()->kind() != c10::prim::Param) return std::nullopt;
  return path;
}

bool is_strict_prefix(const Path& prefix, const Path& of) {
  return prefix.size() < of.size() && std::equal(prefix.begin(), prefix.end(), of.begin());
}

torch::jit::GraphFunction* callee_of(JitNode* call) {
  auto cls = call->input(0)->type()->expect<c10::ClassType>();
  return &torch::jit::toGraphFunction(cls->getMethod(call->s(c10::attr::name)));
}

/// Inlines `call` with the callee's own graph, not its optimized one: that
/// has every call inlined already, and the layer boundaries are gone.
std::vector<JitValue*> inline_call(JitNode* call) {
  auto* callee = callee_of(call);
  return torch::jit::inlineCallTo(call, callee, callee->graph().get());
}

/// Outputs of calls already inlined, by path. Inlining a later call can
/// replace one of them (a block's output is its last child's call), so
/// inline_call below keeps them up to date.
using Recorded = std::map<Path, std::vector<JitValue*>>;

std::vector<JitValue*> inline_call(JitNode* call, Recorded& recorded) {
  JitValue* old = call->outputs().size() == 1 ? call->output() : nullptr;
  auto outs = inline_call(call);
  if (old != nullptr && outs.size() == 1) {
    for (auto& [path, values] : recorded) {
      std::replace(values.begin(), values.end(), old, outs[0]);
    }
  }
  return outs;
}

/// The attribute a GetAttr node reads, if it is a plain value of a module
/// (not a submodule, tensor or `training`) that nothing in `graph` sets.
std::optional<c10::IValue> plain_attribute(const torch::jit::Module& root, JitNode* get,
                                           const std::set<std::string>& assigned) {
  const std::string& name = get->s(c10::attr::name);
  auto type = get->output()->type();
  if (name == "training" || assigned.count(name) || type->cast<c10::ClassType>() ||
      type->isSubtypeOf(*c10::TensorType::get()) || type->cast<c10::OptionalType>()) {
    return std::nullopt;
  }
  auto path = module_path_of(get->input(0));
  if (!path) return std::nullopt;
  torch::jit::Module m = root;
  for (const auto& part : *path) {
    if (!m.hasattr(part) || !m.attr(part).isModule()) return std::nullopt;
    m = m.attr(part).toModule();
  }
  if (!m.hasattr(name)) return std::nullopt;
  return m.attr(name);
}

/// Turns reads of plain attributes into constants and folds what follows.
/// NOTE: torchvision's IntermediateLayerGetter (FCN's backbone) guards each
/// layer's output with `if name in self.return_layers`; folding the dict
/// removes those branches, so the layer outputs are plain values to cut at.
void fold_plain_attributes(const torch::jit::Module& root, std::shared_ptr<JitGraph>& graph) {
  std::set<std::string> assigned;
  for (JitNode* n : torch::jit::findAllNodes(*graph, c10::prim::SetAttr, true)) {
    assigned.insert(n->s(c10::attr::name));
  }
  bool changed = false;
  for (JitNode* get : torch::jit::findAllNodes(*graph, c10::prim::GetAttr, true)) {
    auto value = plain_attribute(root, get, assigned);
    if (!value) continue;
    torch::jit::WithInsertPoint guard(get);
    auto constant = torch::jit::tryInsertConstant(*graph, *value);
    if (!constant) continue;
    get->output()->replaceAllUsesWith(*constant);
    get->destroy();
    changed = true;
  }
  if (changed) torch::jit::ConstantPropagation(graph);
}

/// Every node of `block`, nested blocks included, in order.
void for_each_node(torch::jit::Block* block, const std::function<void(JitNode*)>& fn) {
  for (JitNode* n : block->nodes()) {
    fn(n);
    for (torch::jit::Block* inner : n->blocks()) for_each_node(inner, fn);
  }
}

/// "`if bool(torch.gt(torch.sum(x), 0)):` (line 12)": the first line of the
/// code an If node was compiled from, for messages.
std::string branch_text(JitNode* branch) {
  const auto& range = branch->sourceRange();
  std::string text = range.source() ? range.text().str() : "";
  text = text.substr(0, text.find('\n'));
  if (text.empty()) return "an if";
  const std::string line =
      range.source()
          ? fmt::format(" (line {})", range.source()->lineno_for_offset(range.start()) + 1)
          : "";
  return fmt::format("`{}`{}", text, line);
}

/// The If around `call` that keeps it from running on every path in eval
/// mode, or nullptr when it always runs. The graph is copied with
/// `training` as False and constant-folded: an If on the mode or on an
/// attribute folds away (wav2vec2's `if not (training and rand() <=
/// layer_drop)` runs its layer whenever the model is in eval mode); an If
/// on the data (`if x.sum() > 0`) does not, and neither does a call in the
/// branch that eval mode skips.
JitNode* branch_around(JitGraph& graph, JitNode* call) {
  static const c10::Symbol kMark = c10::Symbol::attr("stitch_branch_mark");
  std::vector<JitNode*> enclosing;
  for (JitNode* n = call->owningBlock()->owningNode(); n != nullptr;
       n = n->owningBlock()->owningNode()) {
    enclosing.push_back(n);
  }
  if (enclosing.empty()) return nullptr;
  call->i_(kMark, 0);
  for (size_t i = 0; i < enclosing.size(); ++i) enclosing[i]->i_(kMark, int64_t(i) + 1);
  std::shared_ptr<JitGraph> eval = graph.copy();
  call->removeAttribute(kMark);
  for (JitNode* n : enclosing) n->removeAttribute(kMark);

  for (JitNode* get : torch::jit::findAllNodes(*eval, c10::prim::GetAttr, true)) {
    if (get->s(c10::attr::name) != "training") continue;
    torch::jit::WithInsertPoint guard(get);
    get->output()->replaceAllUsesWith(eval->insertConstant(false));
    get->destroy();
  }
  torch::jit::ConstantPropagation(eval);
  JitNode* copied = nullptr;
  for_each_node(eval->block(), [&](JitNode* n) {
    if (n->hasAttribute(kMark) && n->i(kMark) == 0) copied = n;
  });
  if (copied == nullptr) return enclosing.front();  // eval mode never runs it
  JitNode* owner = copied->owningBlock()->owningNode();
  if (owner == nullptr) return nullptr;
  return owner->hasAttribute(kMark) ? enclosing[owner->i(kMark) - 1] : enclosing.front();
}

/// A layer whose tuple is unpacked inside an If's branch (torchaudio 2.6's
/// `x, position_bias = layer(x, ...)` under layer drop): the branch, which
/// runs on every path in eval mode (branch_around), replaces the If, so the
/// tuple is a value of the enclosing block. Returns `v`, or nullptr when `v`
/// is not that. The layer then runs in training mode too: layer drop no
/// longer skips the layer cut at (LibTorch cannot run the If with a tuple
/// output built from both branches: its profiling executor asserts).
JitValue* inline_unpacking_branch(JitValue* v, JitNode* branch) {
  if (v->uses().size() != 1 || v->uses()[0].user->kind() != c10::prim::TupleUnpack) return nullptr;
  torch::jit::Block* block = v->node()->owningBlock();
  torch::jit::InlineBlockBeforeNode(branch, block);
  for (size_t i = 0; i < branch->outputs().size(); ++i) {
    branch->output(i)->replaceAllUsesWith(block->outputs()[i]);
  }
  branch->destroy();
  return v;
}

/// The value a layer's output takes at the top level of the graph, or why
/// there is none.
struct Lifted {
  JitValue* value = nullptr;
  std::string why_not;  // "is called inside a loop", ...
};

/// The value `v` takes at the top level of the graph: a value defined in an
/// If branch is followed out through the branch's outputs, when the branch
/// runs on every path in eval mode (branch_around).
Lifted lift_to_top(JitGraph& graph, JitValue* v) {
  for (JitNode* n = v->node()->owningBlock()->owningNode(); n != nullptr;
       n = n->owningBlock()->owningNode()) {
    if (n->kind() == c10::prim::Loop) return {nullptr, "is called inside a loop"};
  }
  if (JitNode* branch = branch_around(graph, v->node())) {
    return {nullptr, fmt::format("runs only on one path of {}, so on the other its output does "
                                 "not exist",
                                 branch_text(branch))};
  }
  while (v->node()->owningBlock() != graph.block()) {
    torch::jit::Block* block = v->node()->owningBlock();
    JitNode* owner = block->owningNode();
    JitValue* lifted = nullptr;
    for (size_t i = 0; i < block->outputs().size(); ++i) {
      if (block->outputs()[i] == v) lifted = owner->output(i);
    }
    if (lifted == nullptr) lifted = inline_unpacking_branch(v, owner);
    if (lifted == nullptr)
      return {nullptr, "is called inside a branch whose result does not leave it"};
    v = lifted;
  }
  return {v, ""};
}

/// A method's graph being rewritten, and the outputs of the children found
/// in it.
class Surgeon {
 public:
  explicit Surgeon(Component& c)
      : c_(c), graph_(c.module.get_method(c.spec.method).graph()->copy()) {}

  std::shared_ptr<JitGraph>& graph() { return graph_; }

  /// The top-level value each of `paths` outputs, in order. Inlines method
  /// calls on the way (helper methods such as resnet's _forward_impl,
  /// containers, nested modules) until the calls of each path are visible.
  std::vector<JitValue*> locate(const std::vector<std::string>& paths) {
    std::vector<Path> targets;
    for (const auto& p : paths) {
      check_path(c_, p);
      targets.push_back(split_path(p));
    }
    Recorded outputs;  // every call of a target
    fold_plain_attributes(c_.module, graph_);
    while (JitNode* call = next_call_to_inline(targets)) {
      const auto path = *module_path_of(call->input(0));
      const bool target = is_target_forward(call, targets);
      auto outs = inline_call(call, outputs);
      if (target) outputs[path].push_back(outs.size() == 1 ? outs[0] : nullptr);
      fold_plain_attributes(c_.module, graph_);
    }
    for (JitNode* n : torch::jit::findAllNodes(*graph_, c10::prim::CallMethod, true)) {
      if (is_target_forward(n, targets)) {
        outputs[*module_path_of(n->input(0))].push_back(n->output());
      }
    }
    std::vector<JitValue*> located;
    for (size_t i = 0; i < targets.size(); ++i) {
      located.push_back(single_output(paths[i], outputs[targets[i]]));
    }
    return located;
  }

  /// Removes what no output depends on, method calls included (DCE alone
  /// keeps them: they might have side effects; a layer's forward has none
  /// that matter once its output is unused).
  void prune() {
    for (bool changed = true; changed;) {
      torch::jit::EliminateDeadCode(graph_);
      changed = false;
      auto calls = torch::jit::findAllNodes(*graph_, c10::prim::CallMethod, true);
      for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
        if (!(*it)->hasUses()) {
          (*it)->destroy();
          changed = true;
        }
      }
    }
  }

  /// Drops the top-level nodes after `v`'s producer: once the graph returns
  /// `v`, nothing after it runs (side effects included).
  void drop_after(JitValue* v) {
    JitNode* last = v->node()->kind() == c10::prim::Param ? nullptr : v->node();
    while (graph_->return_node()->prev() != last &&
           graph_->return_node()->prev() != graph_->param_node()) {
      graph_->return_node()->prev()->destroy();
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw ModelError(fmt::format("{}model '{}' ({}): {}", c_.spec.loc.prefix(), c_.spec.name,
                                 c_.spec.file.filename().string(), what));
  }

 private:
  bool is_target_forward(JitNode* call, const std::vector<Path>& targets) const {
    auto path = module_path_of(call->input(0));
    if (!path || call->s(c10::attr::name) != "forward") return false;
    return std::find(targets.begin(), targets.end(), *path) != targets.end();
  }

  /// A call on the way down to a target: a method of a module whose path is
  /// a strict prefix of a target's (self._forward_impl, self.backbone), or
  /// a helper method of a target itself.
  JitNode* next_call_to_inline(const std::vector<Path>& targets) const {
    for (JitNode* n : torch::jit::findAllNodes(*graph_, c10::prim::CallMethod, true)) {
      auto path = module_path_of(n->input(0));
      if (!path) continue;
      for (const auto& t : targets) {
        if (is_strict_prefix(*path, t) || (*path == t && n->s(c10::attr::name) != "forward")) {
          return n;
        }
      }
    }
    return nullptr;
  }

  JitValue* single_output(const std::string& path, const std::vector<JitValue*>& calls) {
    if (calls.empty()) {
      fail(
          fmt::format("layer '{}' exists but {} never calls it, so it has no output "
                      "to use",
                      path, c_.spec.method));
    }
    if (calls.size() > 1) {
      fail(
          fmt::format("layer '{}' is called {} times in {}, so its output is "
                      "ambiguous\n  fix: use a layer that is called once",
                      path, calls.size(), c_.spec.method));
    }
    if (calls[0] == nullptr) {
      fail(
          fmt::format("layer '{}' returns several values where it is called; cannot take its "
                      "output",
                      path));
    }
    const Lifted top = lift_to_top(*graph_, calls[0]);
    if (top.value == nullptr) {
      fail(
          fmt::format("layer '{}' {}; cannot take its output\n"
                      "  fix: use a layer that runs on every path (one before the branch or "
                      "after it)",
                      path, top.why_not));
    }
    return top.value;
  }

  Component& c_;
  std::shared_ptr<JitGraph> graph_;
};

/// What the new forward reads from the module tree: for every module path
/// ("" for self), the attributes read from it; which modules still have a
/// method called (or escape as values); and whether every read starts at self.
struct Reads {
  std::map<std::string, std::set<std::string>> from;
  std::set<std::string> called;
  bool all_from_self = true;
};

Reads reads_of(JitGraph& graph) {
  Reads reads;
  for (JitNode* n : torch::jit::findAllNodes(graph, c10::prim::GetAttr, true)) {
    auto owner = module_path_of(n->input(0));
    if (!owner) {
      reads.all_from_self = false;
      continue;
    }
    Path path = *owner;
    reads.from[join_path(path)].insert(n->s(c10::attr::name));
    if (!n->output()->type()->cast<c10::ClassType>()) continue;
    path.push_back(n->s(c10::attr::name));
    for (const auto& use : n->output()->uses()) {
      if (use.user->kind() != c10::prim::GetAttr) reads.called.insert(join_path(path));
    }
  }
  return reads;
}

/// Drops the children nothing reads any more: fc after a cut at avgpool, and
/// inside containers whose own forward was inlined away (features.7 onward
/// after a cut at features.6). A nested module loses its methods and unread
/// children only when its class type is its own: types can be shared
/// between instances (resnet's blocks), and another instance may still run.
void drop_unread_children(torch::jit::Module& top, JitGraph& graph) {
  Reads reads = reads_of(graph);
  std::map<c10::ClassType*, int> instances;
  std::vector<std::pair<std::string, torch::jit::Module>> modules;
  for (const auto& m : top.named_modules()) {
    ++instances[m.value.type().get()];
    modules.emplace_back(m.name, m.value);
  }
  for (auto& [path, module] : modules) {
    auto type = module.type();
    if (!path.empty()) {
      if (!reads.all_from_self || !reads.from.count(path) || reads.called.count(path) ||
          instances[type.get()] > 1) {
        continue;
      }
      std::vector<std::string> methods;
      for (auto* fn : type->methods()) methods.push_back(fn->name());
      for (const auto& name : methods) type->unsafeRemoveMethod(name);
    }
    const auto& read = reads.from[path];
    std::vector<std::string> unread;
    for (const auto& child : module.named_children()) {
      if (!read.count(child.name)) unread.push_back(child.name);
    }
    for (const auto& child : unread) {  // not while iterating: removal shifts slots
      module._ivalue()->unsafeRemoveAttr(child);
      type->unsafeRemoveAttribute(child);
    }
  }
}

/// Replaces the component's method with `graph`, drops methods and
/// top-level children the new graph no longer uses.
void install(Component& c, std::shared_ptr<JitGraph> graph) {
  torch::jit::EliminateDeadCode(graph);
  auto type = c.module.type();
  // Arguments keep their defaults (wav2vec2's `lengths: Optional[Tensor] = None`).
  std::map<std::string, c10::IValue> defaults;
  for (const auto& arg : c.module.get_method(c.spec.method).function().getSchema().arguments()) {
    if (arg.default_value()) defaults[arg.name()] = *arg.default_value();
  }
  std::vector<std::string> methods;
  for (auto* fn : type->methods()) methods.push_back(fn->name());
  for (const auto& name : methods) type->unsafeRemoveMethod(name);
  auto cu = c.module._ivalue()->compilation_unit();
  auto name = type->name()->qualifiedName() + ".forward";
  if (cu->find_function(name) != nullptr) cu->unsafeRemoveMethod(name);
  auto* fn = cu->create_function(c10::QualifiedName(name), graph);
  std::vector<c10::Argument> args;
  for (JitValue* in : graph->inputs()) {
    const std::string arg = in->debugNameBase();
    auto it = defaults.find(arg);
    args.emplace_back(arg, in->type(), c10::nullopt,
                      it == defaults.end() ? c10::optional<c10::IValue>()
                                           : c10::optional<c10::IValue>(it->second));
  }
  torch::jit::toGraphFunction(*fn).setSchema(c10::FunctionSchema(
      "forward", "", std::move(args), {c10::Argument("", graph->outputs()[0]->type())}));
  type->addMethod(fn);
  c.spec.method = "forward";
  drop_unread_children(c.module, *graph);
}

void cut_at(Component& c, const std::string& path) {
  Surgeon s(c);
  JitValue* out = s.locate({path})[0];
  auto& graph = *s.graph();
  graph.return_node()->removeAllInputs();
  graph.return_node()->addInput(out);
  s.drop_after(out);
  s.prune();
  install(c, s.graph());
}

/// Several children's outputs as a Dict[str, Tensor] keyed by path, in one
/// forward pass (torchvision's create_feature_extractor, timm's
/// features_only).
void tap(Component& c, const std::vector<std::string>& paths) {
  std::set<std::string> seen;
  for (const auto& p : paths) {
    if (!seen.insert(p).second) {
      throw SpecError(fmt::format("{}model '{}': tap '{}' is listed twice", c.spec.loc.prefix(),
                                  c.spec.name, p));
    }
  }
  Surgeon s(c);
  auto outs = s.locate(paths);
  auto& graph = *s.graph();
  std::vector<JitValue*> keys;
  JitNode* last = graph.param_node();
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!outs[i]->type()->isSubtypeOf(*c10::TensorType::get())) {
      s.fail(
          fmt::format("tap '{}' outputs {}, not a Tensor\n  fix: tap a layer that "
                      "returns a tensor (or cut at '{}' and index its output)",
                      paths[i], outs[i]->type()->annotation_str(), paths[i]));
    }
    if (outs[i]->node()->isAfter(last)) last = outs[i]->node();
  }
  // The dict goes right after the last tapped output; what follows is dead.
  torch::jit::WithInsertPoint guard(last->next());
  // NOTE: a tapped tensor may be changed in place later in the same pass
  // (resnet's `out += identity` after bn2); such taps are copied so the
  // dict holds the value at the tap, as create_feature_extractor's does.
  torch::jit::AliasDb aliases(s.graph());
  for (auto& v : outs) {
    if (aliases.hasWriters(v)) {
      torch::jit::WithInsertPoint at_tap(v->node()->next());
      JitValue* none = graph.insertConstant(c10::IValue());
      v = graph.insertNode(graph.create(c10::aten::clone, {v, none}))->output()->setType(v->type());
    }
  }
  for (const auto& p : paths) keys.push_back(graph.insertConstant(p));
  JitNode* dict = graph.insertNode(
      graph.createDict(c10::StringType::get(), c10::TensorType::get(), keys, outs));
  graph.return_node()->removeAllInputs();
  graph.return_node()->addInput(dict->output());
  s.drop_after(dict->output());
  s.prune();
  install(c, s.graph());
}

bool is_plain(JitNode* n) {
  auto k = n->kind();
  return k == c10::prim::GetAttr || k == c10::prim::Constant || k == c10::prim::ListConstruct ||
         k == c10::prim::TupleConstruct;
}

/// The values computed before the split that the rest still uses, other
/// than what can be recomputed from the model's own inputs (x.shape for a
/// final resize can): those cross the cut.
std::vector<std::string> crossing_values(JitGraph& graph, const std::set<JitNode*>& before) {
  std::set<JitValue*> from_inputs(graph.inputs().begin(), graph.inputs().end());
  std::vector<std::string> crossing;
  for (JitNode* n : graph.nodes()) {
    if (!before.count(n)) continue;
    bool ok = n->kind() != c10::prim::CallMethod && n->blocks().empty();
    for (JitValue* in : n->inputs()) ok = ok && (from_inputs.count(in) || is_plain(in->node()));
    for (JitValue* out : n->outputs()) {
      if (ok || is_plain(n)) {
        from_inputs.insert(out);
        continue;
      }
      // Only a value the rest reads itself crosses the cut, not the values
      // it was computed from.
      const bool read_after =
          std::any_of(out->uses().begin(), out->uses().end(),
                      [&](const torch::jit::Use& use) { return !before.count(use.user); });
      if (!read_after) continue;
      // The variable's name in the model's code (identity, not %identity.3),
      // and the layer that computes it.
      std::string name = out->hasDebugName() ? out->debugNameBase() : "%" + out->debugName();
      if (n->kind() == c10::prim::CallMethod) {
        if (auto layer = module_path_of(n->input(0)); layer && !layer->empty()) {
          name += fmt::format(" (the output of {})", join_path(*layer));
        }
      } else {
        name += fmt::format(" (from {})", n->kind().toQualString());
      }
      if (std::find(crossing.begin(), crossing.end(), name) == crossing.end()) {
        crossing.push_back(name);
      }
    }
  }
  return crossing;
}

/// `graph` with inputs (self, features, then the original inputs it still
/// uses, in order).
std::shared_ptr<JitGraph> reorder_inputs(JitGraph& graph, JitValue* feature) {
  auto inputs = graph.inputs().vec();
  auto reordered = std::make_shared<JitGraph>();
  std::unordered_map<JitValue*, JitValue*> map;
  map[inputs[0]] = reordered->addInput("self")->setType(inputs[0]->type());
  map[feature] = reordered->addInput("features")->setType(feature->type());
  for (JitValue* v : inputs) {
    if (v != inputs[0] && v != feature && v->hasUses()) {
      map[v] = reordered->addInput(v->debugNameBase())->setType(v->type());
    }
  }
  std::vector<JitValue*> args;
  for (JitValue* v : inputs) {
    // Unused inputs get any value: nothing reads them.
    args.push_back(map.count(v) ? map[v] : map[inputs[0]]);
  }
  auto outs = torch::jit::insertGraph(*reordered, graph, args);
  for (JitValue* o : outs) reordered->registerOutput(o);
  return reordered;
}

void start_after(Component& c, const std::string& path) {
  Surgeon s(c);
  JitValue* split = s.locate({path})[0];
  auto& graph = *s.graph();
  std::set<JitNode*> before;
  for (JitNode* n : graph.nodes()) {
    before.insert(n);
    if (n == split->node()) break;
  }
  JitValue* feature = graph.addInput("features")->setType(split->type());
  split->replaceAllUsesWith(feature);
  // The part before the split does not run any more.
  s.prune();
  auto crossing = crossing_values(graph, before);
  if (!crossing.empty()) {
    s.fail(fmt::format(
        "cannot start after '{}': a skip connection across the cut: the rest of {} also "
        "uses {}, computed before it\n"
        "  fix: split at a layer that no skip connection crosses",
        path, c.spec.method, join(crossing)));
  }
  install(c, reorder_inputs(graph, feature));
}

}  // namespace

void apply_surgery(Component& c) {
  const auto& s = c.spec;
  // With both, the model runs from after to cut: `after` must be a layer of
  // the whole model that the cut keeps.
  const bool both = !s.cut.empty() && !s.after.empty();
  if (both) check_path(c, s.after);
  if (!s.cut.empty()) cut_at(c, s.cut);
  if (both) {
    const auto kept = module_paths(c.module);
    if (std::find(kept.begin(), kept.end(), s.after) == kept.end()) {
      throw ModelError(fmt::format(
          "{}model '{}' ({}): after: '{}' is not in the part that cut: '{}' keeps\n"
          "  fix: with both, after names a layer before cut's (the model runs from after "
          "to cut)",
          s.loc.prefix(), s.name, s.file.filename().string(), s.after, s.cut));
    }
  }
  if (!s.after.empty()) start_after(c, s.after);
  if (!s.taps.empty()) tap(c, s.taps);
}

// ---- Every submodule's output, for inspect ---------------------------------

SubmoduleOutputs submodule_outputs(const torch::jit::Module& module, const std::string& method,
                                   int depth) {
  auto graph = module.get_method(method).graph()->copy();
  Recorded outputs;
  // Only a module's forward is its output; helper methods are not rows.
  auto row_of = [](JitNode* call) -> std::optional<Path> {
    auto path = module_path_of(call->input(0));
    if (!path || path->empty() || call->s(c10::attr::name) != "forward") return std::nullopt;
    return path;
  };
  // Inline every call above `depth` (and self's helper methods), keeping
  // the output of each forward; the calls left are the rows at `depth`.
  auto next = [&]() -> JitNode* {
    for (JitNode* n : torch::jit::findAllNodes(*graph, c10::prim::CallMethod, true)) {
      auto path = module_path_of(n->input(0));
      if (path && (depth < 0 || static_cast<int>(path->size()) < depth)) return n;
    }
    return nullptr;
  };
  while (JitNode* call = next()) {
    auto row = row_of(call);  // before inlining destroys the call
    auto outs = inline_call(call, outputs);
    if (row) outputs[*row].push_back(outs.size() == 1 ? outs[0] : nullptr);
  }
  for (JitNode* n : torch::jit::findAllNodes(*graph, c10::prim::CallMethod, true)) {
    if (auto row = row_of(n)) outputs[*row].push_back(n->output());
  }
  SubmoduleOutputs result;
  std::vector<JitValue*> values;
  for (const auto& [path, calls] : outputs) {
    JitValue* top = calls.size() == 1 && calls[0] ? lift_to_top(*graph, calls[0]).value : nullptr;
    if (top == nullptr) continue;
    result.paths.push_back(join_path(path));
    values.push_back(top);
  }
  // The method's own output goes last.
  values.push_back(graph->outputs()[0]);
  graph->eraseOutput(0);
  JitNode* tuple = graph->createTuple(values);
  graph->appendNode(tuple);
  graph->registerOutput(tuple->output());
  torch::jit::EliminateDeadCode(graph);
  result.graph = graph;
  return result;
}

}  // namespace stitch
