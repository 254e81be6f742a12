#pragma once
// What a stitch artifact's manifest declares about forward's inputs (and where
// artifact.h's declared_outputs and check_inputs are defined): read by
// bench (to make inputs of the declared shapes) and by check_inputs (to
// refuse tensors that do not fit, before running).

#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace stitch {

/// An argument of forward, with what stitch's manifest says about it.
struct DeclaredInput {
  std::string name;
  bool has_default = false;
  bool declared = false;             // the manifest lists it
  std::vector<nlohmann::json> dims;  // sizes, or names of dynamic dims
  at::ScalarType dtype = at::kFloat;
  std::string probe;  // the spec's probe: value ("T", "16"), if any

  /// "float[N, 10]"
  std::string type_str() const;
};

/// Every argument of forward, in order; `declared` for those a stitch
/// artifact's manifest lists (none for another TorchScript file).
std::vector<DeclaredInput> declared_inputs(const torch::jit::Module& module);

/// Why `shape` does not fit a declared input's dims and fixed sizes; "" when
/// it fits.
std::string misfit(const DeclaredInput& input, const std::vector<int64_t>& shape);

}  // namespace stitch
