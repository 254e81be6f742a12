#pragma once
// The table of built-in ops: every OpDef of every family, by name.

#include <string>
#include <vector>

#include "ops/op_def.h"

namespace stitch {

/// nullptr for an unknown op.
const OpDef* find_op(const std::string& name);
/// Every op name, sorted, for "did you mean" and docs.
std::vector<std::string> op_names();
/// Every op, sorted by name.
const std::vector<const OpDef*>& all_ops();

/// Checks a call against the op's signature and returns the node's args
/// (graph values, and numbers for arithmetic, in order) and kwargs (every
/// other parameter by name, defaults filled in). Throws SpecError at `loc`.
void bind_op_args(const OpSignature& sig, std::vector<Arg>& args, Kwargs& kwargs,
                  const SourceLoc& loc);

}  // namespace stitch
