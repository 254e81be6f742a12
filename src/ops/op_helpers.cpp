// What the op families share: the shape rules' view of a call, the fixes
// they suggest, and TorchScript text for literals.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ops/adapt.h"
#include "ops/expression_text.h"
#include "ops/op_def.h"

namespace stitch {

[[noreturn]] void shape_error(const Node& node, const std::string& message) {
  throw ShapeError(node.loc.prefix() + message);
}

const Literal& ShapeCall::kw(const std::string& key) const {
  const Literal* v = node.kwarg(key);
  if (v == nullptr) shape_error(node, node.op + ": missing argument '" + key + "'");
  return *v;
}

std::vector<int64_t> ShapeCall::ints(const std::string& key) const {
  std::vector<int64_t> out;
  for (const auto& item : kw(key).items) out.push_back(item.i);
  return out;
}

std::string ShapeCall::arg(size_t i) const {
  const auto& a = node.args.at(i);
  if (const auto* v = std::get_if<Value>(&a)) return value_text(graph, *v);
  return std::get<Literal>(a).str();
}

const ValueType& ShapeCall::tensor(size_t i) const {
  const ValueType* t = args.at(i);
  if (t == nullptr || !t->is_tensor()) {
    fail(fmt::format("{}: argument {} must be a tensor, got {}", node.op, arg(i),
                     t ? t->str() : std::get<Literal>(node.args[i]).str()));
  }
  return *t;
}

void ShapeCall::fail(const std::string& message) const {
  shape_error(node, message);
}

int64_t ShapeCall::axis(int64_t dim, int64_t rank, const std::string& what) const {
  if (dim < -rank || dim >= rank) {
    fail(fmt::format("{}: {}={} is out of range for a tensor of rank {} ({})", node.op, what, dim,
                     rank, tensor(0).str()));
  }
  return dim < 0 ? dim + rank : dim;
}

void ShapeCall::need_float(const ValueType& t, size_t i) const {
  if (!at::isFloatingType(t.dtype)) {
    fail(fmt::format("{} needs a floating-point tensor, but {} is {}{}", node.op, arg(i), t.str(),
                     at::isIntegralType(t.dtype, true)
                         ? fmt::format("\n  fix: embedding({}, VOCAB, DIM) for token ids", arg(i))
                         : ""));
  }
}

int64_t ShapeCall::static_dim(const ValueType& t, int64_t d, const std::string& what) const {
  if (!t.shape[d].is_static()) {
    fail(fmt::format("{} needs a known {}, but dim {} of {} is {} (dynamic)", node.op, what, d,
                     arg(0), t.shape[d].str()));
  }
  return t.shape[d].size();
}

void ShapeCall::check_size(const std::string& what, int64_t v) const {
  if (v <= 0) fail(fmt::format("{}={} must be positive", what, v));
  if (v > kMaxSize) fail(fmt::format("{}={} is too large (at most 2^31)", what, v));
}

ValueType float_tensor(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  c.need_float(t, 0);
  return t;
}

std::string adapt_fix(const std::string& x, const ValueType& from, const Shape& to) {
  AdaptTarget target;
  target.shape = to;
  auto plan = plan_adapter(from, target);
  // A dim of any size is -1 in to= (shape_str writes it ?, which a spec cannot).
  std::vector<std::string> dims;
  for (const auto& d : to) dims.push_back(d.str() == "?" ? "-1" : d.str());
  const std::string adapt = fmt::format("adapt({}, to=[{}])", x, fmt::join(dims, ", "));
  if (plan && !plan->steps.empty() && plan->spec_text(x) != adapt) {
    return fmt::format("{}   or   {}", plan->spec_text(x), adapt);
  }
  return adapt;
}

std::string ints_text(const Literal& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.items.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(list.items[i].i);
  }
  return out + "]";
}

std::string float_text(const Literal& v) {
  return v.kind == Literal::Kind::Int ? std::to_string(v.i) + ".0" : v.str();
}

ParamDef required(std::string name, ParamDef::Kind kind) {
  return {std::move(name), kind, std::nullopt};
}

ParamDef optional(std::string name, ParamDef::Kind kind, Literal fallback) {
  return {std::move(name), kind, std::move(fallback)};
}

torch::jit::Module new_module(const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                              const std::string& type) {
  torch::jit::Module m(c10::QualifiedName("__torch__.stitch." + type), cu,
                       /*shouldMangle=*/true);
  // Modules made in Python have `training`; ones made in C++ need it for
  // self.training in dropout and batchnorm, and for train()/eval().
  m.register_attribute("training", c10::BoolType::get(), true);
  return m;
}

}  // namespace stitch
