#pragma once
// Symbolic shapes: a dimension is a known size (224), a named dynamic size
// (N), or a product of them with a coefficient (N*T, 512*N). Enough to keep
// `N` symbolic through flatten, reshape and concat.

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stitch {

/// The largest size stitch accepts for a declared dimension or a layer's
/// size argument (out, vocab, sizes...): 2^31. Larger ones are refused
/// before anything is allocated.
constexpr int64_t kMaxSize = int64_t(1) << 31;

class Dim {
 public:
  Dim(int64_t size = 0) : coef_(size) {}  // NOLINT: implicit, for {N, 3, 224}
  static Dim symbol(const std::string& name);
  /// "224", "N", or a product such as "2*N" or "N*T" (Dim::str's form);
  /// nullopt when `text` is none of these. Throws ShapeError on overflow.
  static std::optional<Dim> parse(const std::string& text);

  bool is_static() const { return symbols_.empty(); }
  /// The size; only for static dims.
  int64_t size() const { return coef_; }
  int64_t coefficient() const { return coef_; }
  const std::vector<std::string>& symbols() const { return symbols_; }

  Dim operator*(const Dim& other) const;
  /// Exact division; nullopt when `other` does not divide this dim.
  std::optional<Dim> divide(const Dim& other) const;
  /// Sum of two dims; nullopt when not both static and not the same symbols.
  std::optional<Dim> plus(const Dim& other) const;

  bool operator==(const Dim& other) const {
    return coef_ == other.coef_ && symbols_ == other.symbols_;
  }
  bool operator!=(const Dim& other) const { return !(*this == other); }

  /// The size this dim takes when each symbol has the given value.
  int64_t evaluate(const std::map<std::string, int64_t>& values) const;
  std::string str() const;

 private:
  int64_t coef_ = 0;
  std::vector<std::string> symbols_;  // sorted, with repeats
};

/// A name: letters, digits and _, not starting with a digit (N, image, fc_1).
bool is_identifier(const std::string& s);

/// The dynamic batch dimension, as in `g.input("x", {stitch::N, 10})`.
extern const Dim N;

using Shape = std::vector<Dim>;

std::string shape_str(const Shape& shape);    // [N, 3, 224, 224]
std::string dtype_str(at::ScalarType dtype);  // float, int64
std::optional<at::ScalarType> parse_dtype(const std::string& name);
/// "float[N, 512]"
std::string tensor_type_str(at::ScalarType dtype, const Shape& shape);
Dim numel(const Shape& shape);

/// What a value in the graph is: a tensor, a tuple/list of values, a dict
/// from string to values, a scalar or None.
struct ValueType {
  enum class Kind { Tensor, Tuple, List, Dict, Int, Float, Bool, String, None };
  Kind kind = Kind::Tensor;
  // Tensor
  Shape shape;
  at::ScalarType dtype = at::kFloat;
  // Tuple, List (elements), Dict (elements with keys), NamedTuple (keys too)
  std::vector<ValueType> elements;
  std::vector<std::string> keys;

  static ValueType tensor(Shape shape, at::ScalarType dtype = at::kFloat);
  bool is_tensor() const { return kind == Kind::Tensor; }
  std::string str() const;
};

}  // namespace stitch
