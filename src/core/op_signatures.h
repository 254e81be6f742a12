#pragma once
// The built-in ops' signatures: parameter names, kinds and defaults. Used to
// bind a call's arguments (positional or by keyword) to named parameters.

#include "stitch/graph.h"

#include <optional>
#include <string>
#include <vector>

namespace stitch {

struct ParamDef {
  enum class Kind {
    Tensor,      // one graph value
    Tensors,     // one or more graph values (variadic, first parameter)
    Scalar,      // a graph value or a number (arithmetic)
    Int,
    Float,
    Bool,
    String,
    IntList,
    FloatList,
    Shape,       // a list of ints and dim names: [N, 3, 5]
  };
  std::string name;
  Kind kind;
  std::optional<Literal> fallback;  // the default; nullopt: required
};

struct OpSignature {
  std::string name;
  std::string category;  // merge, shape, learned, fixed, arithmetic, adapt
  std::vector<ParamDef> params;
  size_t min_values = 1;  // for Tensors/Scalar params: how many values at least
  size_t max_values = 1;  // 0: unbounded
};

/// nullptr for an unknown op.
const OpSignature* find_op(const std::string& name);
/// Every op name, for "did you mean" and docs.
std::vector<std::string> op_names();

/// Checks a call against the op's signature and returns the node's args
/// (graph values, and numbers for arithmetic, in order) and kwargs (every
/// other parameter by name, defaults filled in). Throws SpecError at `loc`.
void bind_op_args(const OpSignature& sig, std::vector<Arg>& args,
                  Kwargs& kwargs, const SourceLoc& loc);

}  // namespace stitch
