#include "stitch/check.h"

#include <fmt/format.h>

#include <set>

#include "check/adapt_target.h"
#include "check/analysis.h"
#include "check/example_inputs.h"
#include "core/assert.h"
#include "core/value_json.h"
#include "ops/expression_text.h"
#include "ops/registry.h"
#include "stitch/runtime.h"
#include "util/deadline.h"

namespace stitch {

namespace {

// Two probe runs with different sizes for each dynamic dim tell the
// dynamic output dims apart from the static ones. The sizes are chosen so
// that no dim is two things at once: N is 2 then 3; the other dims are 16
// then 32 (the k-th other dim 32 + 8k), so 16 is a T and not 8*N.
constexpr int64_t kProbeBatch[2] = {2, 3};
constexpr int64_t kProbeOther[2] = {16, 32};
constexpr int64_t kProbeOtherStep = 8;

using Assignment = std::map<std::string, int64_t>;

/// One argument of a probe run: its type, its name in the model, and the
/// spec's `probe:` value when it is an input that has one.
struct ProbeArg {
  const ValueType* type = nullptr;
  std::string name;
  std::optional<Dim> probe;
};

Assignment probe_assignment(const std::vector<ProbeArg>& args, int run) {
  std::set<std::string> symbols;
  std::function<void(const ValueType&)> visit = [&](const ValueType& t) {
    for (const auto& d : t.shape) symbols.insert(d.symbols().begin(), d.symbols().end());
    for (const auto& e : t.elements) visit(e);
  };
  for (const auto& a : args) {
    visit(*a.type);
    if (a.probe) symbols.insert(a.probe->symbols().begin(), a.probe->symbols().end());
  }
  Assignment values;
  int64_t others = 0;
  for (const auto& s : symbols) {
    values[s] = s == "N" ? kProbeBatch[run] : kProbeOther[run] + run * kProbeOtherStep * others++;
  }
  return values;
}

/// The probe run's inputs (example_inputs.h makes the tensors), and the
/// text that tells them: "feats: float[2, 16, 80] random, ...".
struct ProbeInputs {
  std::vector<c10::IValue> values;
  std::string text;
};

ProbeInputs probe_inputs(const std::vector<ProbeArg>& args, const Assignment& values) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(0);
  auto sizes_of = [&](const ValueType& t) {
    std::vector<int64_t> sizes;
    for (const auto& d : t.shape) sizes.push_back(d.evaluate(values));
    return sizes;
  };
  std::function<c10::IValue(const ValueType&)> element = [&](const ValueType& t) -> c10::IValue {
    using K = ValueType::Kind;
    if (t.kind == K::Tensor) {
      return example_tensors({{"", sizes_of(t), t.dtype, std::nullopt}}, generator)[0];
    }
    if (t.kind != K::Tuple) {
      throw ShapeError("only tensors and tuples of tensors can be passed to a model, not " +
                       t.str());
    }
    std::vector<c10::IValue> items;
    for (const auto& e : t.elements) items.push_back(element(e));
    return c10::ivalue::Tuple::create(std::move(items));
  };
  std::vector<ExampleSlot> slots;
  for (const auto& a : args) {
    if (!a.type->is_tensor()) continue;
    std::optional<int64_t> probe;
    if (a.probe) probe = a.probe->evaluate(values);
    slots.push_back({a.name, sizes_of(*a.type), a.type->dtype, probe});
  }
  auto tensors = example_tensors(slots, generator);
  ProbeInputs inputs;
  size_t next = 0;
  for (const auto& a : args) {
    inputs.values.push_back(a.type->is_tensor() ? c10::IValue(tensors[next++]) : element(*a.type));
  }
  inputs.text = example_text(slots);
  return inputs;
}

/// Maps a dim seen in two probe runs back to a symbolic dim.
Dim recover_dim(int64_t a, int64_t b, const Assignment& va, const Assignment& vb) {
  if (a == b) return Dim(a);
  for (const auto& [s, x] : va) {
    const int64_t y = vb.at(s);
    if (a % x == 0 && b % y == 0 && a / x == b / y) {
      return Dim(a / x) * Dim::symbol(s);
    }
  }
  for (const auto& [s, x] : va) {
    for (const auto& [r, y] : va) {
      if (r < s) continue;
      const int64_t xy = x * y, xy_b = vb.at(s) * vb.at(r);
      if (a % xy == 0 && b % xy_b == 0 && a / xy == b / xy_b) {
        return Dim(a / xy) * Dim::symbol(s) * Dim::symbol(r);
      }
    }
  }
  return Dim::symbol("?");
}

ValueType recover_type(const c10::IValue& a, const c10::IValue& b, const Assignment& va,
                       const Assignment& vb) {
  ValueType t;
  using K = ValueType::Kind;
  if (a.isTensor()) {
    const auto& ta = a.toTensor();
    const auto& tb = b.toTensor();
    t = ValueType::tensor({}, ta.scalar_type());
    for (int64_t d = 0; d < ta.dim(); ++d) {
      t.shape.push_back(d < tb.dim() ? recover_dim(ta.size(d), tb.size(d), va, vb)
                                     : Dim::symbol("?"));
    }
  } else if (a.isTuple()) {
    t.kind = K::Tuple;
    const auto& ea = a.toTupleRef().elements();
    const auto& eb = b.toTupleRef().elements();
    for (size_t i = 0; i < ea.size(); ++i) t.elements.push_back(recover_type(ea[i], eb[i], va, vb));
    auto type = a.toTupleRef().type();
    if (type && type->schema()) {
      for (const auto& arg : type->schema()->arguments()) t.keys.push_back(arg.name());
    }
  } else if (a.isList()) {
    t.kind = K::List;
    auto la = a.toListRef();
    auto lb = b.toListRef();
    for (size_t i = 0; i < la.size() && i < lb.size(); ++i) {
      t.elements.push_back(recover_type(la[i], lb[i], va, vb));
    }
  } else if (a.isGenericDict()) {
    t.kind = K::Dict;
    auto da = a.toGenericDict();
    auto db = b.toGenericDict();
    for (const auto& item : da) {
      if (!item.key().isString()) {
        throw ShapeError("model outputs a dict with non-string keys; not supported");
      }
      t.keys.push_back(item.key().toStringRef());
      t.elements.push_back(recover_type(item.value(), db.at(item.key()), va, vb));
    }
  } else if (a.isInt()) {
    t.kind = K::Int;
  } else if (a.isDouble()) {
    t.kind = K::Float;
  } else if (a.isBool()) {
    t.kind = K::Bool;
  } else if (a.isString()) {
    t.kind = K::String;
  } else if (a.isNone()) {
    t.kind = K::None;
  } else {
    throw ShapeError("model returns a " + a.tagKind() + ", which stitch cannot use");
  }
  return t;
}

class Analyzer {
 public:
  /// `loaded`: the graph's models as components already (an artifact's own
  /// submodules); the rest are loaded from their files.
  Analyzer(const Graph& graph, std::map<std::string, Component> loaded) {
    a_.graph = &graph;
    a_.components = std::move(loaded);
  }

  Analysis run() {
    const Graph& g = *a_.graph;
    for (const auto& name : g.model_order()) {
      if (!a_.components.count(name)) a_.components.emplace(name, load_component(g.model(name)));
    }
    a_.types.resize(g.nodes().size());
    a_.notes.resize(g.nodes().size());
    for (size_t id = 0; id < g.nodes().size(); ++id) {
      a_.types[id] = infer(static_cast<int>(id));
    }
    check_outputs();
    a_.simple = simplify(g);
    return std::move(a_);
  }

 private:
  ValueType infer(int id) {
    const Node& n = a_.graph->nodes()[id];
    std::vector<const ValueType*> args;
    for (const auto& arg : n.args) {
      const auto* v = std::get_if<Value>(&arg);
      args.push_back(v ? &a_.types.at(v->id()) : nullptr);
    }
    switch (n.kind) {
      case Node::Kind::Input:
        return ValueType::tensor(n.shape, n.dtype);
      case Node::Kind::Op:
        return op(id, n, args);
      case Node::Kind::Call:
        return call(id, n, args);
      case Node::Kind::Index:
        return index(n, *args[0], std::get<Literal>(n.args[1]));
      case Node::Kind::Attr:
        return index(n, *args[0], Literal(n.op));
    }
    return {};
  }

  ValueType index(const Node& n, const ValueType& of, const Literal& key) {
    using K = ValueType::Kind;
    const std::string what = value_text(*a_.graph, std::get<Value>(n.args[0]));
    if (key.kind == Literal::Kind::Int) {
      int64_t size = of.kind == K::Tensor ? (of.shape.empty() ? 0 : -1)
                                          : static_cast<int64_t>(of.elements.size());
      if (of.kind == K::Tensor) {
        if (of.shape.empty()) shape_error(n, fmt::format("cannot index {}, a scalar", what));
        Shape rest(of.shape.begin() + 1, of.shape.end());
        return ValueType::tensor(rest, of.dtype);
      }
      if (of.kind != K::Tuple && of.kind != K::List) {
        shape_error(n, fmt::format("cannot index {} ({}) with {}", what, of.str(), key.i));
      }
      int64_t i = key.i < 0 ? key.i + size : key.i;
      if (i < 0 || i >= size) {
        shape_error(n, fmt::format("index {} is out of range: {} has {} elements ({})", key.i, what,
                                   size, of.str()));
      }
      return of.elements[i];
    }
    for (size_t i = 0; i < of.keys.size(); ++i) {
      if (of.keys[i] == key.s) return of.elements[i];
    }
    std::string keys;
    for (const auto& k : of.keys) keys += (keys.empty() ? "" : ", ") + k;
    shape_error(n, fmt::format("{} has no field \"{}\" ({}){}", what, key.s,
                               keys.empty() ? "it is " + of.str() : "fields: " + keys,
                               keys.empty() ? "" : ""));
  }

  /// A failed probe run: what it was fed and how the model failed.
  struct ProbeFailure {
    std::string inputs;  // "feats: float[2, 16, 80] random, ..."
    std::string why;
  };

  /// The error when a probe run does not return.
  static std::string probe_timeout(const Component& c, const std::string& inputs) {
    return fmt::format(
        "model '{}' ({}) did not return within {:g} s of a probe run (fed {})\n"
        "  fix: if the model is only slow, let probes run longer: STITCH_PROBE_SECONDS=600 "
        "(0: no limit); a model that never returns on these inputs cannot be used",
        c.spec.name, c.spec.describe(), probe_seconds(), inputs);
  }

  /// Runs the model twice on probe inputs of `args`' types (two sizes for
  /// each dynamic dim); what failed, if a run did.
  static std::optional<ProbeFailure> probe_failure(Component& c, const std::vector<ProbeArg>& args,
                                                   c10::IValue out[2], Assignment values[2]) {
    for (int run = 0; run < 2; ++run) {
      values[run] = probe_assignment(args, run);
      auto inputs = probe_inputs(args, values[run]);
      try {
        detail::Deadline deadline(probe_seconds(), [&] { return probe_timeout(c, inputs.text); });
        out[run] = c.run(inputs.values);
      } catch (const c10::Error& e) {
        return ProbeFailure{inputs.text, detail::short_message(e)};
      } catch (const std::exception& e) {
        return ProbeFailure{inputs.text, detail::first_line(e.what())};
      }
    }
    return std::nullopt;
  }

  /// Whether the model runs with its first argument of type `first` and the
  /// others as they are.
  static bool accepts(Component& c, std::vector<ProbeArg> args, const ValueType& first) {
    args.at(0).type = &first;
    c10::IValue out[2];
    Assignment values[2];
    return !probe_failure(c, args, out, values);
  }

  /// The probe arguments of a model call: the argument types, the model's
  /// parameter names, and the probe: values of the spec's inputs.
  std::vector<ProbeArg> probe_args(const Node& n, Component& c,
                                   const std::vector<const ValueType*>& types) const {
    const auto params = c.arguments();
    std::vector<ProbeArg> args;
    for (size_t i = 0; i < types.size(); ++i) {
      ProbeArg a{types[i], i < params.size() ? params[i].name() : "", std::nullopt};
      if (const auto* v = std::get_if<Value>(&n.args[i])) {
        const Node& from = a_.graph->node(*v);
        if (from.kind == Node::Kind::Input) a.probe = from.probe;
      }
      args.push_back(std::move(a));
    }
    return args;
  }

  /// A built-in op: its shape rule from the op table. adapt has none: its
  /// target may be a model's input (like=MODEL), which only check knows.
  ValueType op(int id, const Node& n, const std::vector<const ValueType*>& args) {
    if (n.op == "adapt") return adapt(id, n, args);
    const OpDef* def = find_op(n.op);
    STITCH_INTERNAL_ASSERT(def != nullptr && def->infer != nullptr, "op {} has no shape rule",
                           n.op);
    return def->infer(ShapeCall{*a_.graph, n, args, a_.notes[id]});
  }

  ValueType call(int id, const Node& n, const std::vector<const ValueType*>& args) {
    (void)id;
    Component& c = a_.components.at(n.op);
    const auto params = c.arguments();
    size_t required = 0;
    for (const auto& p : params) required += p.default_value() ? 0 : 1;
    if (args.size() < required || args.size() > params.size()) {
      std::string names;
      for (const auto& p : params) names += (names.empty() ? "" : ", ") + p.name();
      shape_error(n, fmt::format("model '{}' ({}) takes {} argument{} ({}), got {}", n.op,
                                 c.spec.describe(), params.size(), params.size() == 1 ? "" : "s",
                                 names, args.size()));
    }
    c10::IValue out[2];
    Assignment values[2];
    const auto probe = probe_args(n, c, args);
    if (auto failed = probe_failure(c, probe, out, values)) {
      shape_error(n, failed_call_message(n, c, probe, *failed));
    }
    return recover_type(out[0], out[1], values[0], values[1]);
  }

  /// adapt(x, to=SHAPE) / adapt(x, like=MODEL): the smallest adapter, recorded
  /// as the node's note; build.cpp plans it again the same way.
  ValueType adapt(int id, const Node& n, const std::vector<const ValueType*>& args) {
    const std::string source = value_text(*a_.graph, std::get<Value>(n.args[0]));
    const ValueType& x = *args[0];
    if (!x.is_tensor()) {
      shape_error(n, fmt::format("adapt: {} is {}, not a tensor\n  fix: adapt({}[0], ...)", source,
                                 x.str(), source));
    }
    auto target = adapt_target(n, a_.components);
    if (!target) return adapt_by_trial(id, n, x, source);
    auto plan = plan_adapter(x, *target);
    if (!plan) shape_error(n, no_adapter_message(x, *target, source));
    a_.notes[id] = plan->note();
    if (plan->learned()) {
      a_.untrained.push_back(fmt::format(
          "the adapter of {}{} is {}, freshly initialised (seeded, not trained): train it "
          "(stitch train) before its outputs mean anything",
          source,
          n.kwarg("like") && !n.kwarg("like")->s.empty() ? " for " + n.kwarg("like")->s
                                                         : std::string(),
          plan->how()));
    }
    return ValueType::tensor(plan->to, x.dtype);
  }

  /// like=MODEL when the model's first layer does not tell what it expects:
  /// x passes unchanged if a test run of the model accepts it.
  ValueType adapt_by_trial(int id, const Node& n, const ValueType& x, const std::string& source) {
    const std::string& model = n.kwarg("like")->s;
    Component& c = a_.components.at(model);
    const auto params = c.arguments();
    const std::vector<ProbeArg> probe = {
        {&x, params.empty() ? "" : params[0].name(), std::nullopt}};
    c10::IValue out[2];
    Assignment values[2];
    auto failed = probe_failure(c, probe, out, values);
    if (!failed) {
      a_.notes[id] = fmt::format(
          "adapt: {} fits as it is ({} accepts it in a test run; its first layer "
          "does not tell what it expects)",
          shape_str(x.shape), model);
      return x;
    }
    std::string fix = "adapt(" + source + ", to=[N, ...]) with the shape " + model + " takes";
    for (const auto& plan : simple_adapters(x)) {
      if (accepts(c, probe, ValueType::tensor(plan.to, x.dtype))) {
        fix = plan.spec_text(source) + "   (" + model + " accepts " + shape_str(plan.to) +
              " in a test run)";
        break;
      }
    }
    shape_error(
        n,
        fmt::format("adapt({}, like={}): cannot tell what {} ({}) expects: its input does not go "
                    "straight into a Linear, Conv, LayerNorm, BatchNorm or Embedding layer, and "
                    "it fails on {} as it is: {}\n  fix: {}",
                    source, model, model, c.spec.describe(), x.str(), failed->why, fix));
  }

  /// Why no adapter turns x into the target, and what to write instead.
  static std::pair<std::string, std::string> no_adapter_reason(const ValueType& x,
                                                               const AdaptTarget& target,
                                                               const std::string& source) {
    if (target.needs_integers) {
      return {
          "the model starts with an Embedding, which takes integer token ids, "
          "not features",
          "feed the model int64 token ids (inputs: {shape: [N, L], dtype: int64})"};
    }
    if (!at::isFloatingType(x.dtype)) {
      return {"only shape changes apply to " + dtype_str(x.dtype) + " values",
              fmt::format("embedding({}, VOCAB, DIM) to turn token ids into features", source)};
    }
    return {
        "no shape-only adapter fits and a learned projection needs a known "
        "(static) feature size",
        fmt::format("write the steps yourself, e.g. reshape({}, [-1, ...]), "
                    "pool({}, \"avg\"), resize({}, [H, W]), linear({}, OUT) or "
                    "conv({}, OUT)",
                    source, source, source, source, source)};
  }

  static std::string no_adapter_message(const ValueType& x, const AdaptTarget& target,
                                        const std::string& source) {
    std::string want = target_str(target);
    if (!target.model.empty()) {
      want += fmt::format(" ({} expects it: {})", target.model, target.description);
    }
    auto [why, fix] = no_adapter_reason(x, target, source);
    return fmt::format("adapt: nothing turns {} {} into {}: {}\n  fix: {}", source, x.str(), want,
                       why, fix);
  }

  /// Why a model call fails its probe run. When the model's first layer
  /// tells what it expects and the edge does not give it, the edge is at
  /// fault ("cannot feed vision into head", both sides and the adapter that
  /// fits); otherwise the message says that the test run failed, on which
  /// values, and what to change.
  std::string failed_call_message(const Node& n, Component& c, const std::vector<ProbeArg>& args,
                                  const ProbeFailure& failed) {
    const Graph& g = *a_.graph;
    const std::string source = value_text(g, std::get<Value>(n.args[0]));
    const ValueType& produced = *args[0].type;
    const auto expected = expected_input(c, 0);
    if (expected && produced.is_tensor()) {
      auto plan = plan_adapter(produced, target_from_expectation(*expected, n.op));
      if (!plan || !plan->steps.empty()) return mismatch_message(n, c, produced, *expected, plan);
    }
    const std::string run = fmt::format("  inputs: {}\n  it says: {}\n", failed.inputs, failed.why);
    if (produced.is_tensor()) {
      // A shape-only adapter the model accepts: the edge is at fault.
      for (const auto& plan : simple_adapters(produced)) {
        if (accepts(c, args, ValueType::tensor(plan.to, produced.dtype))) {
          return fmt::format(
              "cannot feed {} into {}: {} ({}) fails on {} in a test run\n{}"
              "  fix: {}   ({} accepts {} in a test run)",
              source, n.op, n.op, c.spec.describe(), produced.str(), run, plan.spec_text(source),
              n.op, shape_str(plan.to));
        }
      }
    }
    std::string lines =
        fmt::format("{} ({}) fails in the test run stitch makes to learn its output shape\n{}",
                    n.op, c.spec.describe(), run);
    return lines + probe_fix(n, c, args);
  }

  /// The fix when no adapter helps: the probe values the spec may set, or
  /// the shapes the model takes.
  std::string probe_fix(const Node& n, Component& c, const std::vector<ProbeArg>& args) const {
    const Graph& g = *a_.graph;
    for (size_t i = 0; i < args.size(); ++i) {
      const auto* v = std::get_if<Value>(&n.args[i]);
      if (!v || !args[i].type->is_tensor() || at::isFloatingType(args[i].type->dtype)) continue;
      const Node& from = g.node(*v);
      if (from.kind != Node::Kind::Input) continue;
      return fmt::format(
          "  fix: if {} needs particular values in '{}', give them to the test run: "
          "inputs: {{{}: {{shape: {}, dtype: {}, probe: VALUE}}}} (an integer or a dim "
          "such as {})",
          n.op, from.name, from.name, shape_str(from.shape), dtype_str(from.dtype),
          some_dim_name());
    }
    return fmt::format(
        "  fix: give {} the inputs it takes (`stitch inspect {}` lists its layers and "
        "arguments)",
        n.op, c.spec.file.filename().string());
  }

  /// A dynamic dim of the spec's inputs other than N, for examples ("T").
  std::string some_dim_name() const {
    const Graph& g = *a_.graph;
    for (int id : g.inputs()) {
      for (const auto& d : g.nodes()[id].shape) {
        for (const auto& s : d.symbols()) {
          if (s != "N") return s;
        }
      }
    }
    return "T";
  }

  /// "cannot feed vision into head" with both sides and the fixes that fit.
  std::string mismatch_message(const Node& n, Component& c, const ValueType& produced,
                               const Expectation& expected,
                               const std::optional<AdapterPlan>& plan) {
    const Graph& g = *a_.graph;
    const Value first = std::get<Value>(n.args[0]);
    const std::string source = value_text(g, first);
    const Node& producer = g.node(first);
    std::string source_desc = source;
    if (producer.kind == Node::Kind::Call) {
      source_desc = fmt::format("{} ({})", producer.op, g.model(producer.op).describe());
    }
    const std::string target_desc = fmt::format("{} ({})", n.op, c.spec.describe());
    const std::string source_name = producer.kind == Node::Kind::Call ? producer.op : source;
    std::string lines = fmt::format("cannot feed {} into {}\n", source_name, n.op);
    const size_t width = std::max(source_desc.size() + 10, target_desc.size() + 9);
    std::string flat;
    if (expected.flattened && produced.shape.size() > 2) {
      // Compare like with like: the model sees this many features.
      const Shape& s = produced.shape;
      flat = fmt::format("  ({} features after flattening)",
                         numel(Shape(s.begin() + 1, s.end())).str());
    }
    lines += fmt::format("  {:<{}}{}{}\n", source_desc + " produces ", width, produced.str(), flat);
    lines += fmt::format("  {:<{}}{}  (first layer{}: {}{})\n", target_desc + " expects ", width,
                         tensor_type_str(at::kFloat, expected.shape),
                         expected.layer.empty() ? "" : " " + expected.layer, expected.description,
                         expected.flattened ? ", after flattening" : "");
    const std::string like = fmt::format("adapt({}, like={})", source, n.op);
    if (plan) return lines + fmt::format("  fix: {}   or   {}", plan->spec_text(source), like);
    const AdaptTarget target = target_from_expectation(expected, n.op);
    return lines + "  fix: " + no_adapter_reason(produced, target, source).second;
  }

  /// How to index a container's first tensor: ["out"] for a dict (its real
  /// key), [1] for a tuple whose item 0 is None.
  static std::string element_example(const ValueType& t) {
    for (size_t i = 0; i < t.elements.size(); ++i) {
      if (!t.elements[i].is_tensor()) continue;
      if (t.kind == ValueType::Kind::Dict && i < t.keys.size()) {
        return fmt::format("[\"{}\"]", t.keys[i]);
      }
      return fmt::format("[{}]", i);
    }
    return t.kind == ValueType::Kind::Dict && !t.keys.empty() ? fmt::format("[\"{}\"]", t.keys[0])
                                                              : "[0]";
  }

  void check_outputs() {
    const Graph& g = *a_.graph;
    if (g.outputs().empty()) throw SpecError("the graph has no outputs");
    for (size_t i = 0; i < g.outputs().size(); ++i) {
      const auto& [name, v] = g.outputs()[i];
      const ValueType& t = a_.types.at(v.id());
      if (!t.is_tensor()) {
        throw ShapeError(fmt::format(
            "{}output '{}' is {}, not a tensor\n  fix: pick one element, e.g. {}{}",
            g.output_locs()[i].prefix(), name, t.str(), value_text(g, v), element_example(t)));
      }
    }
  }

  Analysis a_;
};

}  // namespace

Analysis analyze(const Graph& graph, std::map<std::string, Component> loaded) {
  return Analyzer(graph, std::move(loaded)).run();
}

ValueType value_type(const c10::IValue& value) {
  // One sample: every dim is static.
  return recover_type(value, value, {}, {});
}

/// "res.pt, after a; also takes x (the model's own input)": the part after
/// a layer takes the model's inputs it still uses as further arguments.
std::string call_note(const Graph& graph, const Analysis& a, const std::string& model) {
  std::string note = graph.model(model).describe();
  auto it = a.components.find(model);
  if (it == a.components.end() || it->second.spec.after.empty()) return note;
  const auto args = it->second.arguments();
  if (args.size() < 2) return note;
  std::vector<std::string> names;
  for (size_t i = 1; i < args.size(); ++i) names.push_back(args[i].name());
  return fmt::format("{}; also takes {} (the model's own input{})", note, fmt::join(names, ", "),
                     names.size() > 1 ? "s, in order" : "");
}

std::vector<NodeReport> node_reports(const Graph& graph, const Analysis& a) {
  std::vector<NodeReport> rows;
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const Node& n = graph.nodes()[id];
    NodeReport r;
    r.id = static_cast<int>(id);
    r.name = n.name;
    r.expression = node_expression(graph, r.id);
    r.type = a.types[id];
    r.note = n.kind == Node::Kind::Call ? call_note(graph, a, n.op) : a.notes[id];
    r.loc = n.loc;
    rows.push_back(std::move(r));
  }
  return rows;
}

CheckReport check(const Graph& graph) {
  return report_of(graph, analyze(graph));
}

CheckReport report_of(const Graph& graph, Analysis analysis) {
  CheckReport report;
  report.nodes = node_reports(graph, analysis);
  report.notes = analysis.simple.notes;
  report.notes.insert(report.notes.end(), analysis.untrained.begin(), analysis.untrained.end());
  report.checked = std::make_shared<detail::CheckedModels>();
  report.checked->analysis = std::move(analysis);
  return report;
}

namespace {

/// Whether `analysis` (and the report made from it) is of `graph` as the
/// graph is now: the same object, the same nodes (a graph only grows), the
/// same models used the same way.
bool is_analysis_of(const Analysis& analysis, const CheckReport& report, const Graph& graph) {
  if (analysis.graph != &graph || report.nodes.size() != graph.nodes().size() ||
      analysis.components.size() != graph.models().size()) {
    return false;
  }
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const Node& n = graph.nodes()[id];
    if (report.nodes[id].name != n.name ||
        report.nodes[id].expression != node_expression(graph, static_cast<int>(id))) {
      return false;
    }
  }
  for (const auto& [name, spec] : graph.models()) {
    auto it = analysis.components.find(name);
    if (it == analysis.components.end()) return false;
    const ModelSpec& used = it->second.spec;
    if (used.file != spec.file || used.cut != spec.cut || used.after != spec.after ||
        used.taps != spec.taps || used.method != spec.method ||
        used.freeze_all != spec.freeze_all || used.freeze != spec.freeze) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<Analysis> take_analysis(const CheckReport& report, const Graph& graph) {
  if (!report.checked) return std::nullopt;
  std::lock_guard<std::mutex> lock(report.checked->mutex);
  auto& analysis = report.checked->analysis;
  if (!analysis || !is_analysis_of(*analysis, report, graph)) return std::nullopt;
  std::optional<Analysis> taken = std::move(analysis);
  analysis.reset();
  return taken;
}

std::string CheckReport::table() const {
  size_t name_w = 4, expr_w = 10, type_w = 5;
  for (const auto& r : nodes) {
    name_w = std::max(name_w, r.name.size());
    expr_w = std::max(expr_w, std::min<size_t>(r.expression.size(), 60));
    type_w = std::max(type_w, r.type.str().size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", "name", name_w, "expression",
                                expr_w, "shape", type_w, "note");
  for (const auto& r : nodes) {
    std::string expr = r.expression.size() > 60 ? r.expression.substr(0, 57) + "..." : r.expression;
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", r.name.empty() ? "-" : r.name, name_w, expr,
                       expr_w, r.type.str(), type_w, r.note);
  }
  for (const auto& note : notes) out += "note: " + note + "\n";
  return out;
}

std::string CheckReport::json() const {
  nlohmann::json j;
  j["ok"] = true;
  j["nodes"] = nlohmann::json::array();
  for (const auto& r : nodes) {
    j["nodes"].push_back({{"id", r.id},
                          {"name", r.name},
                          {"expression", r.expression},
                          {"type", r.type.str()},
                          {"shape", detail::shape_json(r.type)},
                          {"dtype", detail::dtype_json(r.type)},
                          {"note", r.note},
                          {"line", r.loc.known() ? nlohmann::json(r.loc.line) : nullptr}});
  }
  j["notes"] = notes;
  return detail::dump_json(j);
}

}  // namespace stitch
