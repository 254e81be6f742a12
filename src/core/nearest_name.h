#pragma once
// "did you mean": the closest known name to a mistyped one.

#include <string>
#include <vector>

namespace stitch {

/// The closest of `candidates` to `name` (edit distance), or "" if none is
/// close.
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace stitch
