#pragma once
// One built-in op is one OpDef: its signature (the parameters a spec or the
// C++ API passes), its shape rule (what check infers), and its lowering (the
// TorchScript the builder writes, or the submodule it adds). The families
// (merge_ops.cpp, shape_ops.cpp, learned_ops.cpp, fixed_ops.cpp, adapt.cpp)
// each define their ops' rows; registry.cpp gathers them.

#include <torch/script.h>

#include <optional>
#include <string>
#include <vector>

#include "stitch/graph.h"
#include "stitch/shape.h"

namespace stitch {

struct ParamDef {
  enum class Kind {
    Tensor,   // one graph value
    Tensors,  // one or more graph values (variadic, first parameter)
    Scalar,   // a graph value or a number (arithmetic)
    Int,
    Float,
    Bool,
    String,
    IntList,
    FloatList,
    Shape,  // a list of ints and dim names: [N, 3, 5]
  };
  std::string name;
  Kind kind;
  std::optional<Literal> fallback;  // the default; nullopt: required

  /// Whether the parameter takes graph values (it is then an argument of the
  /// node, not a keyword).
  bool takes_values() const {
    return kind == Kind::Tensor || kind == Kind::Tensors || kind == Kind::Scalar;
  }
};

struct OpSignature {
  std::string name;
  std::string family;  // merge, shape, learned, fixed, arithmetic, adapt
  std::vector<ParamDef> params;
  size_t min_values = 1;  // for Tensors/Scalar params: how many values at least
  size_t max_values = 1;  // 0: unbounded

  /// The parameter named `name`, or nullptr.
  const ParamDef* param(const std::string& name) const;
};

/// What a shape rule sees: the node, its arguments' types (nullptr for a
/// number), and `note`, a short description of what the op will be
/// ("Linear(512 -> 5)") that check prints.
struct ShapeCall {
  const Graph& graph;
  const Node& node;
  const std::vector<const ValueType*>& args;
  std::string& note;

  const Literal& kw(const std::string& key) const;
  int64_t integer(const std::string& key) const { return kw(key).i; }
  double number(const std::string& key) const { return kw(key).number(); }
  std::vector<int64_t> ints(const std::string& key) const;
  /// The i-th argument as spec text, for messages.
  std::string arg(size_t i) const;
  /// The i-th argument's type; fails unless it is a tensor.
  const ValueType& tensor(size_t i) const;
  [[noreturn]] void fail(const std::string& message) const;
  /// dim in [-rank, rank) as a non-negative index.
  int64_t axis(int64_t dim, int64_t rank, const std::string& what = "dim") const;
  /// Fails unless argument i (of type t) is floating-point.
  void need_float(const ValueType& t, size_t i) const;
  /// Dim d of t, which must be static.
  int64_t static_dim(const ValueType& t, int64_t d, const std::string& what) const;
  /// Fails unless a layer's size argument is in 1..2^31.
  void check_size(const std::string& what, int64_t v) const;
};

/// What a lowering sees: the node, its arguments as TorchScript expressions,
/// and the type of its first tensor argument.
struct LowerCall {
  const Node& node;
  std::vector<std::string> xs;
  const ValueType& input;

  const std::string& x() const { return xs.at(0); }
  const Literal& kw(const char* key) const { return *node.kwarg(key); }
  size_t rank() const { return input.shape.size(); }
};

/// Where the builder's layers live, and the seeded generator that
/// initializes their weights (the same spec builds the same weights).
struct LayerContext {
  std::shared_ptr<torch::jit::CompilationUnit> cu;
  at::Generator generator;
};

/// An empty TorchScript module of class __torch__.stitch.<type>, with the
/// `training` attribute Python modules have.
torch::jit::Module new_module(const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                              const std::string& type);

using ShapeRule = ValueType (*)(const ShapeCall&);
/// The call as a TorchScript expression.
using Lowering = std::string (*)(const LowerCall&);
/// The submodule that holds the op's weights; the builder calls its forward
/// on the first argument.
using LayerLowering = torch::jit::Module (*)(const LowerCall&, LayerContext&);

struct OpDef {
  OpSignature signature;
  ShapeRule infer = nullptr;  // nullptr only for adapt, which check plans
  Lowering lower = nullptr;   // one of lower and layer; neither for adapt
  LayerLowering layer = nullptr;
  /// Two calls on the same values give different results (dropout), so
  /// build never computes them once for both (check/simplify.h).
  bool random = false;

  const std::string& name() const { return signature.name; }
};

// The families, each in its own file.
std::vector<OpDef> merge_ops();
std::vector<OpDef> shape_ops();
std::vector<OpDef> learned_ops();
std::vector<OpDef> fixed_ops();
std::vector<OpDef> adapt_ops();

// Helpers the families share (op_helpers.cpp).
/// A ShapeError at the node's location.
[[noreturn]] void shape_error(const Node& node, const std::string& message);
/// The shape rule of ops that keep a floating-point tensor's type.
ValueType float_tensor(const ShapeCall& c);
/// Spec text that turns `x` (of type `from`) into `to`: the adapter written
/// out when one fits, and adapt(x, to=...) which picks the same.
std::string adapt_fix(const std::string& x, const ValueType& from, const Shape& to);
/// A list of ints as TorchScript: [1, 2].
std::string ints_text(const Literal& list);
/// A number as a TorchScript float: 2 -> 2.0.
std::string float_text(const Literal& v);
/// Parameter constructors for the tables.
ParamDef required(std::string name, ParamDef::Kind kind);
ParamDef optional(std::string name, ParamDef::Kind kind, Literal fallback);

}  // namespace stitch
