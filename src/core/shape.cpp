#include "stitch/shape.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "stitch/error.h"

namespace stitch {

const Dim N = Dim::symbol("N");

namespace {

// Sizes come from specs and model files: arithmetic on them must fail, not
// overflow.
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) {
    throw ShapeError(fmt::format("dimension {} * {} is too large (over 2^63)", a, b));
  }
  return out;
}

int64_t checked_add(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) {
    throw ShapeError(fmt::format("dimension {} + {} is too large (over 2^63)", a, b));
  }
  return out;
}

}  // namespace

Dim Dim::symbol(const std::string& name) {
  Dim d(1);
  d.symbols_.push_back(name);
  return d;
}

bool is_identifier(const std::string& s) {
  auto start = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; };
  auto rest = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  return !s.empty() && start(s[0]) && std::all_of(s.begin(), s.end(), rest);
}

std::optional<Dim> Dim::parse(const std::string& text) {
  auto trimmed = [](std::string t) {
    t.erase(0, t.find_first_not_of(' '));
    t.erase(t.find_last_not_of(' ') + 1);
    return t;
  };
  auto number = [](const std::string& t) -> std::optional<int64_t> {
    const size_t digits = t.size() - (!t.empty() && t[0] == '-' ? 1 : 0);
    if (digits == 0 || digits > 18 ||
        !std::all_of(t.end() - static_cast<std::ptrdiff_t>(digits), t.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      return std::nullopt;
    }
    return std::stoll(t);
  };
  if (auto size = number(trimmed(text))) return Dim(*size);
  Dim dim(1);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('*', start);
    if (end == std::string::npos) end = text.size();
    const std::string factor = trimmed(text.substr(start, end - start));
    auto size = number(factor);
    if (is_identifier(factor)) {
      dim = dim * Dim::symbol(factor);
    } else if (size && *size >= 0) {
      dim = dim * Dim(*size);
    } else {
      return std::nullopt;
    }
    start = end + 1;
  }
  return dim;
}

Dim Dim::operator*(const Dim& other) const {
  Dim out(checked_mul(coef_, other.coef_));
  if (out.coef_ == 0) {
    return out;
  }
  out.symbols_ = symbols_;
  out.symbols_.insert(out.symbols_.end(), other.symbols_.begin(), other.symbols_.end());
  std::sort(out.symbols_.begin(), out.symbols_.end());
  return out;
}

std::optional<Dim> Dim::divide(const Dim& other) const {
  if (other.coef_ == 0 || coef_ % other.coef_ != 0) {
    return std::nullopt;
  }
  Dim out(coef_ / other.coef_);
  out.symbols_ = symbols_;
  for (const auto& s : other.symbols_) {
    auto it = std::find(out.symbols_.begin(), out.symbols_.end(), s);
    if (it == out.symbols_.end()) {
      return std::nullopt;
    }
    out.symbols_.erase(it);
  }
  return out;
}

std::optional<Dim> Dim::plus(const Dim& other) const {
  if (symbols_ != other.symbols_) {
    return std::nullopt;
  }
  Dim out(checked_add(coef_, other.coef_));
  out.symbols_ = symbols_;
  return out;
}

int64_t Dim::evaluate(const std::map<std::string, int64_t>& values) const {
  int64_t v = coef_;
  for (const auto& s : symbols_) {
    auto it = values.find(s);
    v = checked_mul(v, it == values.end() ? 1 : it->second);
  }
  return v;
}

std::string Dim::str() const {
  if (symbols_.empty()) {
    return std::to_string(coef_);
  }
  std::string out = coef_ == 1 ? "" : std::to_string(coef_) + "*";
  for (size_t i = 0; i < symbols_.size(); ++i) {
    out += (i ? "*" : "") + symbols_[i];
  }
  return out;
}

std::string shape_str(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i ? ", " : "") + shape[i].str();
  }
  return out + "]";
}

std::string dtype_str(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(dtype);
  }
}

std::optional<at::ScalarType> parse_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> kNames = {
      {"float", at::kFloat},       {"float32", at::kFloat}, {"float64", at::kDouble},
      {"double", at::kDouble},     {"float16", at::kHalf},  {"half", at::kHalf},
      {"bfloat16", at::kBFloat16}, {"int64", at::kLong},    {"long", at::kLong},
      {"int32", at::kInt},         {"int", at::kInt},       {"int16", at::kShort},
      {"int8", at::kChar},         {"uint8", at::kByte},    {"bool", at::kBool}};
  auto it = kNames.find(name);
  if (it == kNames.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::string tensor_type_str(at::ScalarType dtype, const Shape& shape) {
  return dtype_str(dtype) + shape_str(shape);
}

Dim numel(const Shape& shape) {
  Dim n(1);
  for (const auto& d : shape) {
    n = n * d;
  }
  return n;
}

ValueType ValueType::tensor(Shape shape, at::ScalarType dtype) {
  ValueType t;
  t.kind = Kind::Tensor;
  t.shape = std::move(shape);
  t.dtype = dtype;
  return t;
}

std::string ValueType::str() const {
  auto join = [&](bool with_keys) {
    std::string out;
    for (size_t i = 0; i < elements.size(); ++i) {
      out += i ? ", " : "";
      if (with_keys && i < keys.size()) {
        out += keys[i] + ": ";
      }
      out += elements[i].str();
    }
    return out;
  };
  switch (kind) {
    case Kind::Tensor:
      return tensor_type_str(dtype, shape);
    case Kind::Tuple:
      return keys.empty() ? "(" + join(false) + ")" : "(" + join(true) + ")";
    case Kind::List:
      return "[" + join(false) + "]";
    case Kind::Dict:
      return "{" + join(true) + "}";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Bool:
      return "bool";
    case Kind::String:
      return "str";
    case Kind::None:
      return "None";
  }
  return "?";
}

}  // namespace stitch
