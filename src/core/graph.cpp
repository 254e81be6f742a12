#include "stitch/graph.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <sstream>

#include "core/artifact_names.h"
#include "core/identifiers.h"
#include "core/nearest_name.h"

namespace stitch {

// ---- Literal ---------------------------------------------------------------

Literal::Literal(std::vector<int64_t> v) : kind(Kind::List) {
  for (auto x : v) items.emplace_back(x);
}

Literal::Literal(std::vector<double> v) : kind(Kind::List) {
  for (auto x : v) items.emplace_back(x);
}

std::string Literal::str() const {
  switch (kind) {
    case Kind::None:
      return "none";
    case Kind::Bool:
      return b ? "true" : "false";
    case Kind::Int:
      return std::to_string(i);
    case Kind::Float: {
      std::string s = fmt::format("{}", f);  // shortest form that reads back
      if (std::isfinite(f) && s.find_first_of(".eE") == std::string::npos) {
        s += ".0";
      }
      return s;
    }
    case Kind::String:
      return "\"" + s + "\"";
    case Kind::List: {
      std::string out = "[";
      for (size_t k = 0; k < items.size(); ++k) {
        out += (k ? ", " : "") + items[k].str();
      }
      return out + "]";
    }
  }
  return "?";
}

// ---- Value -----------------------------------------------------------------

Graph& Value::graph() const {
  if (graph_ == nullptr) {
    throw Error("use of an empty stitch::Value");
  }
  return *graph_;
}

Value Value::operator[](int64_t index) const {
  return graph().index(*this, index);
}
Value Value::operator[](const std::string& key) const {
  return graph().index(*this, key);
}
Value Value::attr(const std::string& name) const {
  return graph().attr(*this, name);
}

namespace {
Value arith(const char* op, Arg a, Arg b) {
  Graph& g =
      std::holds_alternative<Value>(a) ? std::get<Value>(a).graph() : std::get<Value>(b).graph();
  return g.op(op, {std::move(a), std::move(b)});
}
}  // namespace

Value operator+(Value a, Value b) {
  return arith("add", a, b);
}
Value operator-(Value a, Value b) {
  return arith("sub", a, b);
}
Value operator*(Value a, Value b) {
  return arith("mul", a, b);
}
Value operator+(Value a, double b) {
  return arith("add", a, Literal(b));
}
Value operator-(Value a, double b) {
  return arith("sub", a, Literal(b));
}
Value operator*(Value a, double b) {
  return arith("mul", a, Literal(b));
}
Value operator+(double a, Value b) {
  return arith("add", Literal(a), b);
}
Value operator-(double a, Value b) {
  return arith("sub", Literal(a), b);
}
Value operator*(double a, Value b) {
  return arith("mul", Literal(a), b);
}

// ---- ModelSpec, Node ---------------------------------------------------------

std::string ModelSpec::describe() const {
  std::string out = file.filename().string();
  if (!merge.empty()) {
    std::vector<std::string> names;
    for (const auto& f : merge) names.push_back(f.filename().string());
    out = fmt::format("{} merge of {}", merge_method_name(merge_options.method()),
                      fmt::join(names, ", "));
  }
  if (!after.empty() && !cut.empty()) {
    out += fmt::format(", after {} up to {}", after, cut);
  } else if (!cut.empty()) {
    out += ", cut at " + cut;
  } else if (!after.empty()) {
    out += ", after " + after;
  }
  if (!taps.empty()) {
    out += ", taps";
    for (const auto& t : taps) out += " " + t;
  }
  return out;
}

const Literal* Node::kwarg(const std::string& key) const {
  for (const auto& [k, v] : kwargs) {
    if (k == key) return &v;
  }
  return nullptr;
}

// ---- Graph -----------------------------------------------------------------

Graph::Graph(Graph&& other) noexcept {
  *this = std::move(other);
}

Graph& Graph::operator=(Graph&& other) noexcept {
  nodes_ = std::move(other.nodes_);
  inputs_ = std::move(other.inputs_);
  outputs_ = std::move(other.outputs_);
  output_locs_ = std::move(other.output_locs_);
  models_ = std::move(other.models_);
  model_order_ = std::move(other.model_order_);
  spec_yaml = std::move(other.spec_yaml);
  seed = other.seed;
  rebind();
  return *this;
}

void Graph::rebind() {
  for (auto& n : nodes_) {
    for (auto& arg : n.args) {
      if (auto* v = std::get_if<Value>(&arg)) v->graph_ = this;
    }
  }
  for (auto& [name, v] : outputs_) v.graph_ = this;
}

Value Graph::add(Node node) {
  for (const auto& arg : node.args) {
    if (const auto* v = std::get_if<Value>(&arg)) {
      if (&v->graph() != this || v->id() < 0 || v->id() >= static_cast<int>(nodes_.size())) {
        throw Error(fmt::format("{}a value from another graph was passed to {}", node.loc.prefix(),
                                node.op));
      }
    }
  }
  nodes_.push_back(std::move(node));
  return Value(this, static_cast<int>(nodes_.size()) - 1);
}

Value Graph::input(const std::string& name, Shape shape, at::ScalarType dtype, SourceLoc loc) {
  check_identifier("input", name, loc);
  for (int id : inputs_) {
    if (nodes_[id].name == name) {
      throw SpecError(fmt::format("{}input '{}' is declared twice", loc.prefix(), name));
    }
  }
  for (const auto& d : shape) {
    if (d.is_static() && d.size() <= 0) {
      throw SpecError(
          fmt::format("{}input '{}': dimension {} must be positive", loc.prefix(), name, d.size()));
    }
    if (d.is_static() && d.size() > kMaxSize) {
      throw SpecError(fmt::format("{}input '{}': dimension {} is too large (at most 2^31)",
                                  loc.prefix(), name, d.size()));
    }
  }
  Node n;
  n.kind = Node::Kind::Input;
  n.op = "input";
  n.name = name;
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.loc = std::move(loc);
  Value v = add(std::move(n));
  inputs_.push_back(v.id());
  return v;
}

void Graph::probe_with(Value input, Dim value) {
  if (&input.graph() != this || nodes_.at(input.id()).kind != Node::Kind::Input) {
    throw Error("probe_with: the value is not an input of this graph");
  }
  Node& n = nodes_[input.id()];
  if (at::isFloatingType(n.dtype)) {
    throw SpecError(
        fmt::format("{}input '{}': probe: sets the value of integer inputs; {} "
                    "inputs are random",
                    n.loc.prefix(), n.name, dtype_str(n.dtype)));
  }
  for (const auto& s : value.symbols()) {
    bool known = false;
    for (int id : inputs_) {
      for (const auto& d : nodes_[id].shape) {
        for (const auto& t : d.symbols()) known = known || t == s;
      }
    }
    if (!known) {
      throw SpecError(
          fmt::format("{}input '{}': probe: {} uses '{}', which no input's shape "
                      "has",
                      n.loc.prefix(), n.name, value.str(), s));
    }
  }
  n.probe = std::move(value);
}

void Graph::output(const std::string& name, Value value, SourceLoc loc) {
  if (&value.graph() != this) {
    throw Error("output '" + name + "' is a value of another graph");
  }
  for (const auto& [existing, v] : outputs_) {
    if (existing == name) {
      throw SpecError(fmt::format("{}output '{}' is declared twice", loc.prefix(), name));
    }
  }
  // An unnamed value is named after its output, as `name = ...` in a spec
  // names it: the C++ API and the spec then name its layers alike.
  Node& node = nodes_.at(value.id());
  const bool taken = std::any_of(nodes_.begin(), nodes_.end(),
                                 [&](const Node& other) { return other.name == name; });
  // (Not a name like _3, which build gives unnamed values.)
  if (node.name.empty() && node.kind != Node::Kind::Input && !taken && is_valid_name(name) &&
      name[0] != '_') {
    node.name = name;
  }
  outputs_.emplace_back(name, value);
  output_locs_.push_back(std::move(loc));
}

const ModelSpec& Graph::model(const std::string& name) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    throw SpecError("unknown model '" + name + "'");
  }
  return it->second;
}

Value Graph::call(const std::string& model, std::vector<Value> args, SourceLoc loc) {
  if (models_.count(model) == 0) {
    throw SpecError(fmt::format("{}unknown model '{}'", loc.prefix(), model));
  }
  Node n;
  n.kind = Node::Kind::Call;
  n.op = model;
  for (auto& a : args) n.args.emplace_back(a);
  n.loc = std::move(loc);
  return add(std::move(n));
}

Value Graph::index(Value of, Literal key, SourceLoc loc) {
  if (key.kind != Literal::Kind::Int && key.kind != Literal::Kind::String) {
    throw SpecError(
        fmt::format("{}an index must be an integer or a string, got {}", loc.prefix(), key.str()));
  }
  Node n;
  n.kind = Node::Kind::Index;
  n.op = "index";
  n.args = {of, std::move(key)};
  n.loc = std::move(loc);
  return add(std::move(n));
}

Value Graph::attr(Value of, const std::string& name, SourceLoc loc) {
  Node n;
  n.kind = Node::Kind::Attr;
  n.op = name;
  n.args = {of};
  n.loc = std::move(loc);
  return add(std::move(n));
}

void Graph::set_name(Value value, const std::string& name) {
  check_identifier("value", name, nodes_.at(value.id()).loc);
  for (const auto& n : nodes_) {
    if (n.name == name) {
      throw SpecError(fmt::format("{}'{}' is assigned twice (first at line {})",
                                  nodes_.at(value.id()).loc.prefix(), name, n.loc.line));
    }
  }
  nodes_.at(value.id()).name = name;
}

// ---- Model -----------------------------------------------------------------

Model::Model(std::filesystem::path file) {
  spec_.name = file.stem().string();
  for (auto& c : spec_.name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  // A name the file gives must be one a spec could: resnet.v2 -> resnet_v2,
  // 1st -> m_1st, for -> m_for, _a -> m_a.
  if (spec_.name.empty() || std::isdigit(static_cast<unsigned char>(spec_.name[0])) ||
      is_reserved_word(spec_.name) || is_module_attribute(spec_.name)) {
    spec_.name = (spec_.name.rfind('_', 0) == 0 ? "m" : "m_") + spec_.name;
  }
  spec_.file = std::move(file);
}

Model& Model::name(std::string name) {
  spec_.name = std::move(name);
  return *this;
}
Model& Model::cut(std::string path) {
  spec_.cut = std::move(path);
  return *this;
}
Model& Model::after(std::string path) {
  spec_.after = std::move(path);
  return *this;
}
Model& Model::taps(std::vector<std::string> paths) {
  spec_.taps = std::move(paths);
  return *this;
}
Model& Model::freeze() {
  spec_.freeze_all = true;
  return *this;
}
Model& Model::freeze(std::vector<std::string> globs) {
  spec_.freeze = std::move(globs);
  return *this;
}
Model& Model::method(std::string method) {
  if (!spec_.merge.empty()) {
    throw Error(
        "a merge (load_merge) runs forward; its method option is the merge method "
        "(MergeOptions::method)");
  }
  spec_.method = std::move(method);
  return *this;
}

Value Model::operator()(std::vector<Value> args) const {
  if (args.empty()) {
    throw Error("model '" + spec_.name + "' called with no arguments");
  }
  Graph& g = args[0].graph();
  g.add_model(spec_);
  return g.call(spec_.name, std::move(args));
}

Model load(std::filesystem::path file) {
  return Model(std::move(file));
}

Model load_merge(std::vector<std::filesystem::path> files, MergeOptions options) {
  if (files.empty()) throw Error("load_merge: no model files given");
  Model m(files.front());
  m.spec_.merge = std::move(files);
  m.spec_.merge_options = std::move(options);
  return m;
}

}  // namespace stitch
