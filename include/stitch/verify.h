#pragma once
// stitch verify: a saved artifact computes what its parts compute. The spec
// is built again from its model files (component weights from those files,
// the learned built-in layers' weights from the artifact), both run on random
// inputs of the declared shapes, and the outputs are compared.

#include <torch/arg.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "stitch/error.h"

namespace stitch {

/// The artifact and its parts disagree: the message names the first output
/// that differs, by how much, and the tolerance.
class VerifyError : public Error {
 public:
  using Error::Error;
};

/// How to compare.
///   stitch::verify("combined.pt", "spec.yaml", stitch::VerifyOptions().atol(1e-4));
struct VerifyOptions {
  /// The size of every dynamic dimension (N, T, ...) in the random inputs.
  TORCH_ARG(int64_t, dynamic_size) = 2;
  TORCH_ARG(double, rtol) = 1e-4;
  TORCH_ARG(double, atol) = 1e-5;
  /// Seed of the random inputs.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// One output of the artifact compared with the rebuilt parts.
struct OutputComparison {
  std::string name;
  std::vector<int64_t> shape;
  double max_abs_diff = 0.0;
  bool ok = true;
};

struct VerifyReport {
  std::vector<OutputComparison> outputs;
  /// Things worth knowing that do not fail the check by themselves (a
  /// component file changed since the artifact was saved).
  std::vector<std::string> notes;
  double rtol = 0.0;
  double atol = 0.0;

  bool ok() const;
  /// One line per output: name, shape, max abs diff, ok/DIFFERS.
  std::string table() const;
  /// The same as JSON: {"ok", "rtol", "atol", "outputs": [{"name", "shape":
  /// [...], "max_abs_diff", "ok"}...], "notes": [...]}.
  std::string json() const;
};

/// Compares `artifact` with the parts `spec` names. Returns the report when
/// they agree; throws VerifyError with the first difference when they do not,
/// and SpecError / ModelError / ShapeError / IoError when the spec cannot be
/// built or the artifact was not built from it.
[[nodiscard]] VerifyReport verify(const std::filesystem::path& artifact,
                                  const std::filesystem::path& spec,
                                  const VerifyOptions& options = {});

}  // namespace stitch
