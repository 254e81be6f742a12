#pragma once
// The graph: the one model of a combined network. The spec loader and the
// C++ API both build it; the checker, the builder, inspect and graph read it.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "stitch/error.h"
#include "stitch/merge_options.h"
#include "stitch/shape.h"

namespace torch {
namespace jit {
struct Module;
}  // namespace jit
}  // namespace torch

namespace stitch {

class Graph;

/// A constant in an expression: none, true, 3, 0.5, "avg", [1, 2, 3].
struct Literal {
  enum class Kind { None, Bool, Int, Float, String, List };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<Literal> items;

  Literal() = default;
  Literal(bool v) : kind(Kind::Bool), b(v) {}                                 // NOLINT
  Literal(int v) : kind(Kind::Int), i(v) {}                                   // NOLINT
  Literal(int64_t v) : kind(Kind::Int), i(v) {}                               // NOLINT
  Literal(double v) : kind(Kind::Float), f(v) {}                              // NOLINT
  Literal(const char* v) : kind(Kind::String), s(v) {}                        // NOLINT
  Literal(std::string v) : kind(Kind::String), s(std::move(v)) {}             // NOLINT
  Literal(std::vector<Literal> v) : kind(Kind::List), items(std::move(v)) {}  // NOLINT
  Literal(std::vector<int64_t> v);                                            // NOLINT
  Literal(std::vector<double> v);                                             // NOLINT

  bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
  double number() const { return kind == Kind::Int ? double(i) : f; }
  /// As it would be written in a spec: 3, 0.5, "avg", [1, 2], true, none.
  std::string str() const;
};

/// A handle to a value computed in a graph (an input or a node's result).
class Value {
 public:
  Value() = default;
  Value(Graph* graph, int id) : graph_(graph), id_(id) {}

  Graph& graph() const;
  int id() const { return id_; }
  bool valid() const { return graph_ != nullptr; }

  /// x[0] on a tuple or list output, x["key"] on a dict output.
  Value operator[](int64_t index) const;
  Value operator[](int index) const { return (*this)[int64_t{index}]; }
  Value operator[](const std::string& key) const;
  Value operator[](const char* key) const { return (*this)[std::string(key)]; }
  /// x.name on a namedtuple or dict output.
  Value attr(const std::string& name) const;

 private:
  friend class Graph;
  Graph* graph_ = nullptr;
  int id_ = -1;
};

Value operator+(Value a, Value b);
Value operator-(Value a, Value b);
Value operator*(Value a, Value b);
Value operator+(Value a, double b);
Value operator-(Value a, double b);
Value operator*(Value a, double b);
Value operator+(double a, Value b);
Value operator-(double a, Value b);
Value operator*(double a, Value b);

/// An argument of a node: a value of the graph or a constant.
using Arg = std::variant<Value, Literal>;
using Kwargs = std::vector<std::pair<std::string, Literal>>;

/// How a model file is used: which part of it, which parameters train.
struct ModelSpec {
  std::string name;            // name in the graph and submodule name
  std::filesystem::path file;  // absolute, or relative to the cwd
  /// A merge's sources (`merge:` in a spec); then `file` is the first.
  std::vector<std::filesystem::path> merge;
  MergeOptions merge_options;
  std::string cut;                  // keep up to this child (dotted path)
  std::string after;                // keep from just after this child
  std::vector<std::string> taps;    // return these children's outputs
  bool freeze_all = false;          // freeze: true
  std::vector<std::string> freeze;  // freeze: [globs over parameter names]
  std::string method = "forward";
  SourceLoc loc;

  /// "resnet18.pt, cut at avgpool"
  std::string describe() const;
};

/// One computation: an input, a model call, an index, an attribute or a
/// built-in op (see ops.h for the list).
struct Node {
  enum class Kind { Input, Call, Index, Attr, Op };
  Kind kind = Kind::Op;
  std::string op;  // op name (Op), model name (Call), attr name (Attr)
  std::vector<Arg> args;
  Kwargs kwargs;
  std::string name;  // the name it is assigned to in the spec, if any
  SourceLoc loc;
  // Input only
  Shape shape;
  at::ScalarType dtype = at::kFloat;
  /// The value every element takes in check's shape probes and verify's
  /// inputs (integer inputs only; the spec's `probe:`).
  std::optional<Dim> probe;

  const Literal* kwarg(const std::string& key) const;
};

class Model;

/// A combined network: inputs, models, nodes and outputs.
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;  // values point into their graph
  Graph& operator=(const Graph&) = delete;
  /// Moving a graph rebinds the values stored in it; Value handles held
  /// outside it keep pointing to the moved-from graph.
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;

  /// Declares an input; inputs become forward's arguments, in this order.
  Value input(const std::string& name, Shape shape, at::ScalarType dtype = at::kFloat,
              SourceLoc loc = {});
  /// The value every element of integer input `input` takes when stitch runs
  /// the graph on example inputs (check's shape probes, verify): an integer
  /// or a dim of the inputs, like T for a lengths input. Without it, integer
  /// inputs are small ids, and a lengths input (1-D, named *len*) the
  /// sequence length.
  void probe_with(Value input, Dim value);
  /// Declares an output. One output: forward returns a Tensor; several: a
  /// Dict[str, Tensor] keyed by output name.
  void output(const std::string& name, Value value, SourceLoc loc = {});

  /// Registers a model under spec.name; an error if the name is taken by a
  /// different model.
  void add_model(ModelSpec spec);
  /// A built-in op node (ops.h lists them).
  Value op(const std::string& op, std::vector<Arg> args, Kwargs kwargs = {}, SourceLoc loc = {});
  /// Calls a registered model.
  Value call(const std::string& model, std::vector<Value> args, SourceLoc loc = {});
  Value index(Value of, Literal key, SourceLoc loc = {});
  Value attr(Value of, const std::string& name, SourceLoc loc = {});
  /// Gives a value its spec name (the left side of `name = ...`).
  void set_name(Value value, const std::string& name);

  /// Checks shapes, then builds the TorchScript module (build.h).
  [[nodiscard]] torch::jit::Module build() const;

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(Value v) const { return nodes_.at(v.id()); }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<std::pair<std::string, Value>>& outputs() const { return outputs_; }
  const std::vector<SourceLoc>& output_locs() const { return output_locs_; }
  const std::map<std::string, ModelSpec>& models() const { return models_; }
  /// Model names in the order they were added.
  const std::vector<std::string>& model_order() const { return model_order_; }
  const ModelSpec& model(const std::string& name) const;

  /// The spec text as resolved, saved in the artifact (set by the loader; the
  /// C++ API writes one from the graph when empty).
  std::string spec_yaml;
  /// Seed for the initial weights of learned built-in layers.
  uint64_t seed = 0;

 private:
  Value add(Node node);
  void rebind();
  std::vector<Node> nodes_;
  std::vector<int> inputs_;
  std::vector<std::pair<std::string, Value>> outputs_;
  std::vector<SourceLoc> output_locs_;
  std::map<std::string, ModelSpec> models_;
  std::vector<std::string> model_order_;
};

/// A model file, and how to use it: the C++ side of `models.<name>`.
///   auto vision = stitch::load("resnet18.pt").cut("avgpool").freeze();
///   auto features = vision(image);
class Model {
 public:
  explicit Model(std::filesystem::path file);
  /// The name of its submodule in the combined model (default: file stem).
  Model& name(std::string name);
  Model& cut(std::string path);
  Model& after(std::string path);
  Model& taps(std::vector<std::string> paths);
  /// Freezes every parameter.
  Model& freeze();
  /// Freezes parameters whose names match one of the globs.
  Model& freeze(std::vector<std::string> globs);
  Model& method(std::string method);

  const ModelSpec& spec() const { return spec_; }

  /// Adds a call of this model to the arguments' graph.
  Value operator()(std::vector<Value> args) const;
  template <typename... Vs>
  Value operator()(Value first, Vs... rest) const {
    return (*this)(std::vector<Value>{first, rest...});
  }

 private:
  friend Model load_merge(std::vector<std::filesystem::path>, MergeOptions);
  ModelSpec spec_;
};

/// stitch::load("resnet18.pt"): a model file to use in a graph.
Model load(std::filesystem::path file);
/// A model that is the weight-space merge of `files` (docs/merge.md): a
/// spec's `merge:` entry. Cut, freeze and the rest apply to the merge.
Model load_merge(std::vector<std::filesystem::path> files, MergeOptions options = {});

}  // namespace stitch
