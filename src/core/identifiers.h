#pragma once
// The rules for the names a spec or the C++ API gives inputs, models and
// values: identifiers that forward's generated TorchScript can use.

#include <string>

#include "stitch/graph.h"

namespace stitch {

/// Python's keywords and the names forward's generated code relies on.
bool is_reserved_word(const std::string& name);

/// A model is an attribute of the combined module: not one of its own
/// (training, forward, the metadata), nor a private name, which Python's
/// nn.Module keeps for itself (_modules, _parameters...).
bool is_module_attribute(const std::string& name);

/// Whether check_identifier accepts `name`.
bool is_valid_name(const std::string& name);
/// Throws SpecError at `loc` unless `name` can name a `what` (input, model,
/// value).
void check_identifier(const std::string& what, const std::string& name, const SourceLoc& loc);

}  // namespace stitch
