// Binding a call's arguments (positional or by keyword) to an op's
// parameters, with the errors a spec author reads.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "ops/registry.h"

namespace stitch {

namespace {

using K = ParamDef::Kind;

const char* kind_name(K kind) {
  switch (kind) {
    case K::Tensor:
      return "a tensor";
    case K::Tensors:
      return "tensors";
    case K::Scalar:
      return "a tensor or a number";
    case K::Int:
      return "an integer";
    case K::Float:
      return "a number";
    case K::Bool:
      return "true or false";
    case K::String:
      return "a string";
    case K::IntList:
      return "a list of integers";
    case K::FloatList:
      return "a list of numbers";
    case K::Shape:
      return "a shape like [N, 3, 5]";
  }
  return "?";
}

bool literal_fits(const Literal& v, K kind) {
  using LK = Literal::Kind;
  auto all = [&](auto pred) {
    return v.kind == LK::List && std::all_of(v.items.begin(), v.items.end(), pred);
  };
  switch (kind) {
    case K::Int:
      return v.kind == LK::Int;
    case K::Float:
      return v.is_number();
    case K::Bool:
      return v.kind == LK::Bool;
    case K::String:
      return v.kind == LK::String;
    case K::Scalar:
      return v.is_number();
    case K::IntList:
      return all([](const Literal& x) { return x.kind == LK::Int; });
    case K::FloatList:
      return all([](const Literal& x) { return x.is_number(); });
    case K::Shape:
      return all([](const Literal& x) { return x.kind == LK::Int || x.kind == LK::String; });
    default:
      return false;
  }
}

}  // namespace

void bind_op_args(const OpSignature& sig, std::vector<Arg>& args, Kwargs& kwargs,
                  const SourceLoc& loc) {
  auto fail = [&](const std::string& msg) {
    throw SpecError(fmt::format("{}{}: {}", loc.prefix(), sig.name, msg));
  };
  std::vector<Arg> values;
  std::map<std::string, Literal> bound;
  size_t next = 0;  // next parameter to fill positionally
  for (const auto& arg : args) {
    if (next >= sig.params.size()) {
      fail(fmt::format("takes at most {} arguments", sig.params.size()));
    }
    const ParamDef& p = sig.params[next];
    const bool variadic = p.kind == K::Tensors || p.kind == K::Scalar;
    if (p.kind == K::Tensor || variadic) {
      const bool is_value = std::holds_alternative<Value>(arg);
      if (!is_value && !(p.kind == K::Scalar && literal_fits(std::get<Literal>(arg), K::Scalar))) {
        if (variadic && !values.empty() && next + 1 < sig.params.size()) {
          ++next;  // the variadic part is over: fill the next parameter
        } else {
          fail(fmt::format("argument '{}' must be {}, got {}", p.name, kind_name(p.kind),
                           std::get<Literal>(arg).str()));
        }
      } else {
        values.push_back(arg);
        if (!variadic) {
          ++next;
        }
        continue;
      }
    }
    const ParamDef& q = sig.params[next];
    if (std::holds_alternative<Value>(arg)) {
      fail(fmt::format("argument '{}' must be {}, not a tensor", q.name, kind_name(q.kind)));
    }
    bound[q.name] = std::get<Literal>(arg);
    ++next;
  }
  for (auto& [key, value] : kwargs) {
    auto it = std::find_if(sig.params.begin(), sig.params.end(),
                           [&key = key](const ParamDef& p) { return p.name == key; });
    if (it == sig.params.end() || it->takes_values()) {
      std::vector<std::string> names;
      for (const auto& p : sig.params) {
        if (!p.takes_values()) {
          names.push_back(p.name);
        }
      }
      throw SpecError::unknown_name(
          loc, "argument", key, names,
          names.empty() ? "" : fmt::format("\n  {} takes {}", sig.name, fmt::join(names, ", ")),
          sig.name);
    }
    if (bound.count(key)) {
      fail(fmt::format("argument '{}' given twice", key));
    }
    bound[key] = value;
  }
  for (const auto& p : sig.params) {
    if (p.takes_values()) {
      continue;
    }
    auto it = bound.find(p.name);
    if (it == bound.end()) {
      if (!p.fallback) {
        fail(fmt::format("missing argument '{}' ({})", p.name, kind_name(p.kind)));
      }
      bound[p.name] = *p.fallback;
    } else if (!(it->second.kind == Literal::Kind::None && p.fallback &&
                 p.fallback->kind == Literal::Kind::None) &&
               !literal_fits(it->second, p.kind)) {
      fail(fmt::format("argument '{}' must be {}, got {}", p.name, kind_name(p.kind),
                       it->second.str()));
    }
  }
  size_t tensor_values = std::count_if(
      values.begin(), values.end(), [](const Arg& a) { return std::holds_alternative<Value>(a); });
  if (tensor_values == 0) {
    fail("needs a tensor argument");
  }
  if (values.size() < sig.min_values) {
    fail(fmt::format("needs at least {} tensor arguments, got {}", sig.min_values, values.size()));
  }
  if (sig.max_values != 0 && values.size() > sig.max_values) {
    fail(fmt::format("takes {} tensor argument{}, got {}", sig.max_values,
                     sig.max_values == 1 ? "" : "s", values.size()));
  }
  args = std::move(values);
  kwargs.clear();
  for (const auto& p : sig.params) {
    auto it = bound.find(p.name);
    if (it != bound.end()) {
      kwargs.emplace_back(p.name, it->second);
    }
  }
}

}  // namespace stitch
