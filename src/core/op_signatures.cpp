#include "core/op_signatures.h"

#include "core/nearest_name.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace stitch {

namespace {

using K = ParamDef::Kind;

ParamDef req(std::string name, K kind) { return {std::move(name), kind, std::nullopt}; }
ParamDef opt(std::string name, K kind, Literal fallback) {
  return {std::move(name), kind, std::move(fallback)};
}

OpSignature unary(std::string name, std::string category) {
  return {std::move(name), std::move(category), {req("x", K::Tensor)}};
}

std::map<std::string, OpSignature> make_table() {
  std::vector<OpSignature> ops = {
      // merge
      {"concat", "merge", {req("xs", K::Tensors), opt("dim", K::Int, 1)}, 1, 0},
      {"add", "merge", {req("xs", K::Scalar)}, 2, 0},
      {"stack", "merge", {req("xs", K::Tensors), opt("dim", K::Int, 1)}, 1, 0},
      {"mul", "merge", {req("xs", K::Scalar)}, 2, 2},
      {"sub", "arithmetic", {req("xs", K::Scalar)}, 2, 2},
      // shape
      {"flatten", "shape", {req("x", K::Tensor), opt("start", K::Int, 1)}},
      {"reshape", "shape", {req("x", K::Tensor), req("shape", K::IntList)}},
      {"permute", "shape", {req("x", K::Tensor), req("dims", K::IntList)}},
      {"unsqueeze", "shape", {req("x", K::Tensor), req("dim", K::Int)}},
      {"squeeze", "shape", {req("x", K::Tensor), req("dim", K::Int)}},
      {"mean", "shape", {req("x", K::Tensor), opt("dim", K::Int, 1)}},
      {"pool", "shape", {req("x", K::Tensor), opt("kind", K::String, "avg")}},
      {"resize", "shape", {req("x", K::Tensor), req("size", K::IntList)}},
      {"select", "shape",
       {req("x", K::Tensor), req("dim", K::Int), req("index", K::Int)}},
      // learned
      {"linear", "learned",
       {req("x", K::Tensor), req("out", K::Int), opt("bias", K::Bool, true)}},
      {"conv", "learned",
       {req("x", K::Tensor), req("out", K::Int), opt("kernel", K::Int, 1),
        opt("stride", K::Int, 1), opt("padding", K::Int, 0)}},
      {"mlp", "learned",
       {req("x", K::Tensor), req("sizes", K::IntList), opt("act", K::String, "relu"),
        opt("dropout", K::Float, 0.0)}},
      {"embedding", "learned",
       {req("x", K::Tensor), req("vocab", K::Int), req("dim", K::Int)}},
      unary("layernorm", "learned"),
      unary("batchnorm", "learned"),
      {"scale_offset", "learned",
       {req("x", K::Tensor), opt("scale", K::Float, 1.0), opt("offset", K::Float, 0.0),
        opt("learnable", K::Bool, true)}},
      // fixed
      {"normalize", "fixed",
       {req("x", K::Tensor), req("mean", K::FloatList), req("std", K::FloatList)}},
      unary("relu", "fixed"),
      unary("gelu", "fixed"),
      unary("sigmoid", "fixed"),
      unary("tanh", "fixed"),
      {"softmax", "fixed", {req("x", K::Tensor), req("dim", K::Int)}},
      {"dropout", "fixed", {req("x", K::Tensor), req("p", K::Float)}},
      {"l2norm", "fixed", {req("x", K::Tensor), opt("dim", K::Int, 1)}},
      // adapt
      {"adapt", "adapt",
       {req("x", K::Tensor), opt("to", K::Shape, Literal()),
        opt("like", K::String, Literal())}},
  };
  std::map<std::string, OpSignature> table;
  for (auto& op : ops) {
    table.emplace(op.name, std::move(op));
  }
  return table;
}

const std::map<std::string, OpSignature>& table() {
  static const auto kTable = make_table();
  return kTable;
}

const char* kind_name(K kind) {
  switch (kind) {
    case K::Tensor: return "a tensor";
    case K::Tensors: return "tensors";
    case K::Scalar: return "a tensor or a number";
    case K::Int: return "an integer";
    case K::Float: return "a number";
    case K::Bool: return "true or false";
    case K::String: return "a string";
    case K::IntList: return "a list of integers";
    case K::FloatList: return "a list of numbers";
    case K::Shape: return "a shape like [N, 3, 5]";
  }
  return "?";
}

bool literal_fits(const Literal& v, K kind) {
  using LK = Literal::Kind;
  auto all = [&](auto pred) {
    return v.kind == LK::List && std::all_of(v.items.begin(), v.items.end(), pred);
  };
  switch (kind) {
    case K::Int: return v.kind == LK::Int;
    case K::Float: return v.is_number();
    case K::Bool: return v.kind == LK::Bool;
    case K::String: return v.kind == LK::String;
    case K::Scalar: return v.is_number();
    case K::IntList:
      return all([](const Literal& x) { return x.kind == LK::Int; });
    case K::FloatList:
      return all([](const Literal& x) { return x.is_number(); });
    case K::Shape:
      return all([](const Literal& x) {
        return x.kind == LK::Int || x.kind == LK::String;
      });
    default: return false;
  }
}

}  // namespace

const OpSignature* find_op(const std::string& name) {
  auto it = table().find(name);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (const auto& [name, sig] : table()) {
    names.push_back(name);
  }
  return names;
}

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
          fail(fmt::format("argument '{}' must be {}, got {}", p.name,
                           kind_name(p.kind), std::get<Literal>(arg).str()));
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
      fail(fmt::format("argument '{}' must be {}, not a tensor", q.name,
                       kind_name(q.kind)));
    }
    bound[q.name] = std::get<Literal>(arg);
    ++next;
  }
  for (auto& [key, value] : kwargs) {
    auto it = std::find_if(sig.params.begin(), sig.params.end(),
                           [&key = key](const ParamDef& p) { return p.name == key; });
    if (it == sig.params.end() || it->kind == K::Tensor || it->kind == K::Tensors ||
        it->kind == K::Scalar) {
      std::vector<std::string> names;
      for (const auto& p : sig.params) {
        if (p.kind != K::Tensor && p.kind != K::Tensors && p.kind != K::Scalar) {
          names.push_back(p.name);
        }
      }
      auto near = nearest_name(key, names);
      fail(fmt::format("unknown argument '{}'{}", key,
                       near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
    }
    if (bound.count(key)) {
      fail(fmt::format("argument '{}' given twice", key));
    }
    bound[key] = value;
  }
  for (const auto& p : sig.params) {
    if (p.kind == K::Tensor || p.kind == K::Tensors || p.kind == K::Scalar) {
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
      fail(fmt::format("argument '{}' must be {}, got {}", p.name,
                       kind_name(p.kind), it->second.str()));
    }
  }
  size_t tensor_values = std::count_if(values.begin(), values.end(), [](const Arg& a) {
    return std::holds_alternative<Value>(a);
  });
  if (tensor_values == 0) {
    fail("needs a tensor argument");
  }
  if (values.size() < sig.min_values) {
    fail(fmt::format("needs at least {} tensor arguments, got {}", sig.min_values,
                     values.size()));
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
