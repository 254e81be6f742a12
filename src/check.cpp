#include "stitch/check.h"

#include "adapt.h"
#include "analysis.h"
#include "graph_text.h"

#include <fmt/format.h>

#include <set>

namespace stitch {

namespace {

// Two probe runs with different sizes for each dynamic dim tell the
// dynamic output dims apart from the static ones.
constexpr int64_t kProbeBatch[2] = {2, 3};
constexpr int64_t kProbeOther[2] = {16, 24};

using Assignment = std::map<std::string, int64_t>;

Assignment probe_assignment(const std::vector<const ValueType*>& args, int run) {
  Assignment values;
  std::function<void(const ValueType&)> visit = [&](const ValueType& t) {
    for (const auto& d : t.shape) {
      for (const auto& s : d.symbols()) {
        values.emplace(s, s == "N" ? kProbeBatch[run] : kProbeOther[run]);
      }
    }
    for (const auto& e : t.elements) visit(e);
  };
  for (const auto* a : args) visit(*a);
  return values;
}

torch::Tensor probe_tensor(const ValueType& t, const Assignment& values) {
  std::vector<int64_t> sizes;
  for (const auto& d : t.shape) sizes.push_back(d.evaluate(values));
  auto options = torch::TensorOptions().dtype(t.dtype);
  if (at::isFloatingType(t.dtype)) {
    return torch::randn(sizes, options);
  }
  return torch::zeros(sizes, options);
}

c10::IValue probe_value(const ValueType& t, const Assignment& values) {
  using K = ValueType::Kind;
  switch (t.kind) {
    case K::Tensor: return probe_tensor(t, values);
    case K::Tuple: {
      std::vector<c10::IValue> items;
      for (const auto& e : t.elements) items.push_back(probe_value(e, values));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    default:
      throw ShapeError("only tensors and tuples of tensors can be passed to a model, not " +
                       t.str());
  }
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
  explicit Analyzer(const Graph& graph) { a_.graph = &graph; }

  Analysis run() {
    const Graph& g = *a_.graph;
    for (const auto& name : g.model_order()) {
      a_.components.emplace(name, load_component(g.model(name)));
    }
    a_.types.resize(g.nodes().size());
    a_.notes.resize(g.nodes().size());
    for (size_t id = 0; id < g.nodes().size(); ++id) {
      a_.types[id] = infer(static_cast<int>(id));
    }
    check_outputs();
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
      case Node::Kind::Input: return ValueType::tensor(n.shape, n.dtype);
      case Node::Kind::Op:
        // adapt needs the models (like=MODEL), which infer_op does not see.
        if (n.op == "adapt") return adapt(id, n, args);
        return infer_op(*a_.graph, n, args, a_.notes[id]);
      case Node::Kind::Call: return call(id, n, args);
      case Node::Kind::Index: return index(n, *args[0], std::get<Literal>(n.args[1]));
      case Node::Kind::Attr: return index(n, *args[0], Literal(n.op));
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
        shape_error(n, fmt::format("index {} is out of range: {} has {} elements ({})",
                                   key.i, what, size, of.str()));
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

  /// Runs the model on probe inputs of `types`; the error text when it fails.
  static std::optional<std::string> probe_failure(Component& c,
                                                  const std::vector<const ValueType*>& types,
                                                  c10::IValue out[2], Assignment values[2]) {
    for (int run = 0; run < 2; ++run) {
      values[run] = probe_assignment(types, run);
      std::vector<c10::IValue> inputs;
      for (const auto* a : types) inputs.push_back(probe_value(*a, values[run]));
      try {
        out[run] = c.run(inputs);
      } catch (const c10::Error& e) {
        return detail::short_message(e);
      } catch (const std::exception& e) {
        return detail::first_line(e.what());
      }
    }
    return std::nullopt;
  }

  static std::optional<std::string> probe_failure(Component& c, const ValueType& type) {
    c10::IValue out[2];
    Assignment values[2];
    return probe_failure(c, {&type}, out, values);
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
                                 c.spec.describe(), params.size(),
                                 params.size() == 1 ? "" : "s", names, args.size()));
    }
    c10::IValue out[2];
    Assignment values[2];
    if (auto why = probe_failure(c, args, out, values)) {
      shape_error(n, mismatch_message(n, c, args, *why));
    }
    return recover_type(out[0], out[1], values[0], values[1]);
  }

  /// adapt(x, to=SHAPE) / adapt(x, like=MODEL): the smallest adapter, recorded
  /// as the node's note; build.cpp plans it again the same way.
  ValueType adapt(int id, const Node& n, const std::vector<const ValueType*>& args) {
    const std::string source = value_text(*a_.graph, std::get<Value>(n.args[0]));
    const ValueType& x = *args[0];
    if (!x.is_tensor()) {
      shape_error(n, fmt::format("adapt: {} is {}, not a tensor\n  fix: adapt({}[0], ...)",
                                 source, x.str(), source));
    }
    auto target = adapt_target(n, a_.components);
    if (!target) return adapt_by_trial(id, n, x, source);
    auto plan = plan_adapter(x, *target);
    if (!plan) shape_error(n, no_adapter_message(x, *target, source));
    a_.notes[id] = plan->note();
    return ValueType::tensor(plan->to, x.dtype);
  }

  /// like=MODEL when the model's first layer does not tell what it expects:
  /// x passes unchanged if a test run of the model accepts it.
  ValueType adapt_by_trial(int id, const Node& n, const ValueType& x,
                           const std::string& source) {
    const std::string& model = n.kwarg("like")->s;
    Component& c = a_.components.at(model);
    auto why = probe_failure(c, x);
    if (!why) {
      a_.notes[id] = fmt::format(
          "adapt: {} fits as it is ({} accepts it in a test run; its first layer "
          "does not tell what it expects)",
          shape_str(x.shape), model);
      return x;
    }
    std::string fix = "adapt(" + source + ", to=[N, ...]) with the shape " + model + " takes";
    for (const auto& plan : simple_adapters(x)) {
      if (!probe_failure(c, ValueType::tensor(plan.to, x.dtype))) {
        fix = plan.spec_text(source) + "   (" + model + " accepts " +
              shape_str(plan.to) + " in a test run)";
        break;
      }
    }
    shape_error(n, fmt::format(
        "adapt({}, like={}): cannot tell what {} ({}) expects: its input does not go "
        "straight into a Linear, Conv, LayerNorm, BatchNorm or Embedding layer, and "
        "it fails on {} as it is: {}\n  fix: {}",
        source, model, model, c.spec.describe(), x.str(), *why, fix));
  }

  /// Why no adapter turns x into the target, and what to write instead.
  static std::pair<std::string, std::string> no_adapter_reason(const ValueType& x,
                                                               const AdaptTarget& target,
                                                               const std::string& source) {
    if (target.needs_integers) {
      return {"the model starts with an Embedding, which takes integer token ids, "
              "not features",
              "feed the model int64 token ids (inputs: {shape: [N, L], dtype: int64})"};
    }
    if (!at::isFloatingType(x.dtype)) {
      return {"only shape changes apply to " + dtype_str(x.dtype) + " values",
              fmt::format("embedding({}, VOCAB, DIM) to turn token ids into features",
                          source)};
    }
    return {"no shape-only adapter fits and a learned projection needs a known "
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
    return fmt::format("adapt: nothing turns {} {} into {}: {}\n  fix: {}", source, x.str(),
                       want, why, fix);
  }

  /// "cannot feed vision into head" with both sides and the fixes that fit.
  std::string mismatch_message(const Node& n, Component& c,
                               const std::vector<const ValueType*>& args,
                               const std::string& why) {
    const Graph& g = *a_.graph;
    const Value first = std::get<Value>(n.args[0]);
    const std::string source = value_text(g, first);
    const Node& producer = g.node(first);
    std::string source_desc = source;
    if (producer.kind == Node::Kind::Call) {
      source_desc = fmt::format("{} ({})", producer.op, g.model(producer.op).describe());
    }
    const std::string target_desc = fmt::format("{} ({})", n.op, c.spec.describe());
    const auto expected = expected_input(c, 0);
    const std::string source_name = producer.kind == Node::Kind::Call ? producer.op : source;
    std::string lines = fmt::format("cannot feed {} into {}\n", source_name, n.op);
    const size_t width = std::max(source_desc.size() + 10, target_desc.size() + 9);
    std::string flat;
    if (expected && expected->flattened && args[0]->is_tensor() && args[0]->shape.size() > 2) {
      // Compare like with like: the model sees this many features.
      const Shape& s = args[0]->shape;
      flat = fmt::format("  ({} features after flattening)",
                         numel(Shape(s.begin() + 1, s.end())).str());
    }
    lines += fmt::format("  {:<{}}{}{}\n", source_desc + " produces ", width,
                         args[0]->str(), flat);
    if (expected) {
      lines += fmt::format("  {:<{}}{}  (first layer{}: {}{})\n", target_desc + " expects ",
                           width, tensor_type_str(at::kFloat, expected->shape),
                           expected->layer.empty() ? "" : " " + expected->layer,
                           expected->description,
                           expected->flattened ? ", after flattening" : "");
    } else {
      lines += fmt::format("  {} fails on it: {}\n", target_desc, why);
    }
    lines += "  fix: " + suggest_fix(n, c, source, *args[0], expected);
    return lines;
  }

  /// Spec text that would compose: the smallest adapter written out, and
  /// adapt(..., like=MODEL) which picks the same one.
  std::string suggest_fix(const Node& n, Component& c, const std::string& source,
                          const ValueType& produced,
                          const std::optional<Expectation>& expected) {
    const std::string like = fmt::format("adapt({}, like={})", source, n.op);
    if (expected && produced.is_tensor()) {
      const AdaptTarget target = target_from_expectation(*expected, n.op);
      auto plan = plan_adapter(produced, target);
      if (plan && !plan->steps.empty()) {
        return fmt::format("{}   or   {}", plan->spec_text(source), like);
      }
      if (!plan) return no_adapter_reason(produced, target, source).second;
    }
    // The first layer does not tell (or the input fits it and the model
    // fails later): try the shape-only adapters on the model itself.
    if (produced.is_tensor()) {
      for (const auto& plan : simple_adapters(produced)) {
        if (!probe_failure(c, ValueType::tensor(plan.to, produced.dtype))) {
          return fmt::format("{}   ({} accepts {} in a test run)", plan.spec_text(source),
                             n.op, shape_str(plan.to));
        }
      }
    }
    return fmt::format(
        "adapt({}, to=[N, ...]) with the shape {} takes (`stitch inspect {}` lists its "
        "layers)",
        source, n.op, c.spec.file.filename().string());
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

Analysis analyze(const Graph& graph) { return Analyzer(graph).run(); }

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
  return fmt::format("{}; also takes {} (the model's own input{})", note,
                     fmt::join(names, ", "), names.size() > 1 ? "s, in order" : "");
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
  CheckReport report;
  report.nodes = node_reports(graph, analyze(graph));
  return report;
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
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", r.name.empty() ? "-" : r.name, name_w,
                       expr, expr_w, r.type.str(), type_w, r.note);
  }
  return out;
}

}  // namespace stitch
