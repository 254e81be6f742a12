// Shape and dtype inference for the built-in ops.

#include "ops/op_shapes.h"

#include "core/graph_text.h"
#include "ops/adapt.h"

#include <fmt/format.h>

namespace stitch {

[[noreturn]] void shape_error(const Node& node, const std::string& message) {
  throw ShapeError(node.loc.prefix() + message);
}

namespace {

struct OpContext {
  const Graph& graph;
  const Node& node;
  const std::vector<const ValueType*>& args;
  std::string& note;

  const Literal& kw(const std::string& key) const {
    const Literal* v = node.kwarg(key);
    if (v == nullptr) shape_error(node, node.op + ": missing argument '" + key + "'");
    return *v;
  }
  int64_t integer(const std::string& key) const { return kw(key).i; }
  double number(const std::string& key) const { return kw(key).number(); }
  std::vector<int64_t> ints(const std::string& key) const {
    std::vector<int64_t> out;
    for (const auto& item : kw(key).items) out.push_back(item.i);
    return out;
  }
  /// The i-th argument as text, for messages.
  std::string arg(size_t i) const {
    const auto& a = node.args.at(i);
    if (const auto* v = std::get_if<Value>(&a)) return value_text(graph, *v);
    return std::get<Literal>(a).str();
  }
  const ValueType& tensor(size_t i) const {
    const ValueType* t = args.at(i);
    if (t == nullptr || !t->is_tensor()) {
      fail(fmt::format("{}: argument {} must be a tensor, got {}", node.op, arg(i),
                       t ? t->str() : std::get<Literal>(node.args[i]).str()));
    }
    return *t;
  }
  [[noreturn]] void fail(const std::string& message) const { shape_error(node, message); }

  /// dim in [-rank, rank) as a non-negative index.
  int64_t axis(int64_t dim, int64_t rank, const std::string& what = "dim") const {
    if (dim < -rank || dim >= rank) {
      fail(fmt::format("{}: {}={} is out of range for a tensor of rank {} ({})",
                       node.op, what, dim, rank, tensor(0).str()));
    }
    return dim < 0 ? dim + rank : dim;
  }
  void need_float(const ValueType& t, size_t i) const {
    if (!at::isFloatingType(t.dtype)) {
      fail(fmt::format("{} needs a floating-point tensor, but {} is {}{}", node.op,
                       arg(i), t.str(),
                       at::isIntegralType(t.dtype, true)
                           ? fmt::format("\n  fix: embedding({}, VOCAB, DIM) for token ids",
                                         arg(i))
                           : ""));
    }
  }
  int64_t static_dim(const ValueType& t, int64_t d, const std::string& what) const {
    if (!t.shape[d].is_static()) {
      fail(fmt::format("{} needs a known {}, but dim {} of {} is {} (dynamic)",
                       node.op, what, d, arg(0), t.shape[d].str()));
    }
    return t.shape[d].size();
  }
};

ValueType same(const ValueType& t) { return t; }

/// Spec text that turns `x` (of type `from`) into `to`: the adapter written
/// out when one fits, and adapt(x, to=...) which picks the same.
std::string adapt_fix(const std::string& x, const ValueType& from, const Shape& to) {
  AdaptTarget target;
  target.shape = to;
  auto plan = plan_adapter(from, target);
  std::string want = shape_str(to);
  const std::string adapt = fmt::format("adapt({}, to={})", x, want);
  if (plan && !plan->steps.empty() && plan->spec_text(x) != adapt) {
    return fmt::format("{}   or   {}", plan->spec_text(x), adapt);
  }
  return adapt;
}

/// `shape` with dim `d` free: the size concat may change.
Shape free_dim(Shape shape, int64_t d) {
  shape[d] = Dim::symbol("?");
  return shape;
}

std::optional<Shape> broadcast(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    const Dim* da = i < a.size() ? &a[a.size() - 1 - i] : nullptr;
    const Dim* db = i < b.size() ? &b[b.size() - 1 - i] : nullptr;
    Dim& o = out[out.size() - 1 - i];
    if (!da) o = *db;
    else if (!db) o = *da;
    else if (*da == *db) o = *da;
    else if (da->is_static() && da->size() == 1) o = *db;
    else if (db->is_static() && db->size() == 1) o = *da;
    else return std::nullopt;
  }
  return out;
}

ValueType merge_elementwise(const OpContext& c) {
  const ValueType* result = nullptr;
  Shape shape;
  for (size_t i = 0; i < c.args.size(); ++i) {
    if (c.args[i] == nullptr) continue;  // a number
    const ValueType& t = c.tensor(i);
    if (result == nullptr) {
      result = &t;
      shape = t.shape;
      continue;
    }
    auto b = broadcast(shape, t.shape);
    if (!b) {
      c.fail(fmt::format(
          "cannot {} {} {} and {} {}: the shapes do not broadcast\n"
          "  fix: {}",
          c.node.op, c.arg(0), result->str(), c.arg(i), t.str(),
          adapt_fix(c.arg(i), t, shape)));
    }
    if (t.dtype != result->dtype) {
      c.fail(fmt::format("cannot {} {} ({}) and {} ({}): different dtypes", c.node.op,
                         c.arg(0), dtype_str(result->dtype), c.arg(i), dtype_str(t.dtype)));
    }
    shape = *b;
  }
  return ValueType::tensor(shape, result->dtype);
}

ValueType concat(const OpContext& c) {
  const ValueType& first = c.tensor(0);
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  const int64_t dim = c.axis(c.integer("dim"), rank);
  Shape shape = first.shape;
  for (size_t i = 1; i < c.args.size(); ++i) {
    const ValueType& t = c.tensor(i);
    auto mismatch = [&](const std::string& why, const std::string& fix) {
      c.fail(fmt::format(
          "cannot concat {} and {} along dim {}: {}\n  {} is {}\n  {} is {}\n  fix: {}",
          c.arg(0), c.arg(i), dim, why, c.arg(0), first.str(), c.arg(i), t.str(), fix));
    };
    if (static_cast<int64_t>(t.shape.size()) != rank) {
      // Bring the higher-rank one down to the other's rank.
      const bool later = t.shape.size() > first.shape.size();
      const ValueType& longer = later ? t : first;
      const ValueType& shorter = later ? first : t;
      const std::string why =
          fmt::format("they have different ranks ({} and {})", rank, t.shape.size());
      if (shorter.shape.empty()) {  // no dim to free: adapt cannot help
        const std::string scalar = later ? c.arg(0) : c.arg(i);
        mismatch(why, fmt::format("unsqueeze({}, 0) gives the 0-d {} a dim", scalar, scalar));
      }
      const int64_t d = std::min<int64_t>(dim, static_cast<int64_t>(shorter.shape.size()) - 1);
      mismatch(why, adapt_fix(later ? c.arg(i) : c.arg(0), longer, free_dim(shorter.shape, d)));
    }
    if (t.dtype != first.dtype) {
      mismatch("they have different dtypes", "convert one of them in its model");
    }
    for (int64_t d = 0; d < rank; ++d) {
      if (d == dim) continue;
      if (t.shape[d] != first.shape[d]) {
        mismatch(fmt::format("dim {} differs ({} vs {}); only dim {} may differ", d,
                             first.shape[d].str(), t.shape[d].str(), dim),
                 adapt_fix(c.arg(i), t, free_dim(first.shape, dim)));
      }
    }
    auto sum = shape[dim].plus(t.shape[dim]);
    if (!sum) {
      mismatch("the concatenated dims mix dynamic sizes", "concatenate along another dim");
    }
    shape[dim] = *sum;
  }
  return ValueType::tensor(shape, first.dtype);
}

ValueType stack(const OpContext& c) {
  const ValueType& first = c.tensor(0);
  for (size_t i = 1; i < c.args.size(); ++i) {
    const ValueType& t = c.tensor(i);
    if (t.shape != first.shape || t.dtype != first.dtype) {
      c.fail(fmt::format("cannot stack {} {} and {} {}: stack needs equal shapes\n  fix: {}",
                         c.arg(0), first.str(), c.arg(i), t.str(),
                         adapt_fix(c.arg(i), t, first.shape)));
    }
  }
  const int64_t rank = static_cast<int64_t>(first.shape.size()) + 1;
  int64_t dim = c.integer("dim");
  if (dim < -rank || dim >= rank) c.fail(fmt::format("stack: dim={} is out of range", dim));
  if (dim < 0) dim += rank;
  Shape shape = first.shape;
  shape.insert(shape.begin() + dim, Dim(static_cast<int64_t>(c.args.size())));
  return ValueType::tensor(shape, first.dtype);
}

ValueType flatten(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const int64_t rank = static_cast<int64_t>(t.shape.size());
  if (rank == 0) return ValueType::tensor({Dim(1)}, t.dtype);
  const int64_t start = c.axis(c.integer("start"), rank, "start");
  Shape shape(t.shape.begin(), t.shape.begin() + start);
  shape.push_back(numel(Shape(t.shape.begin() + start, t.shape.end())));
  return ValueType::tensor(shape, t.dtype);
}

/// A reshape that keeps the batch: [-1, elements per sample].
std::string reshape_fix(const OpContext& c, const ValueType& t) {
  if (t.shape.size() >= 2) {
    const Dim per_sample = numel(Shape(t.shape.begin() + 1, t.shape.end()));
    if (per_sample.is_static()) {
      return fmt::format("reshape({}, [-1, {}])   ({} elements per sample; the sizes "
                         "after -1 must multiply to it)",
                         c.arg(0), per_sample.size(), per_sample.size());
    }
  }
  return fmt::format("flatten({})", c.arg(0));
}

ValueType reshape(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const auto target = c.ints("shape");
  Dim known(1);
  int infer = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1 && infer < 0) {
      infer = static_cast<int>(i);
    } else if (target[i] <= 0) {
      c.fail(fmt::format("reshape: invalid size {} in {} (sizes are positive, "
                         "with at most one -1)", target[i], c.kw("shape").str()));
    } else {
      known = known * Dim(target[i]);
    }
  }
  const Dim total = numel(t.shape);
  Shape shape;
  for (auto s : target) shape.emplace_back(s);
  if (infer >= 0) {
    auto rest = total.divide(known);
    if (!rest) {
      c.fail(fmt::format("cannot reshape {} {} ({} elements) to {}: {} is not a "
                         "multiple of {}\n  fix: {}", c.arg(0), t.str(), total.str(),
                         c.kw("shape").str(), total.str(), known.str(), reshape_fix(c, t)));
    }
    shape[infer] = *rest;
  } else if (known != total) {
    c.fail(fmt::format("cannot reshape {} {} ({} elements) to {} ({} elements)\n  fix: {}",
                       c.arg(0), t.str(), total.str(), c.kw("shape").str(), known.str(),
                       reshape_fix(c, t)));
  }
  return ValueType::tensor(shape, t.dtype);
}

ValueType permute(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const auto dims = c.ints("dims");
  const int64_t rank = static_cast<int64_t>(t.shape.size());
  if (static_cast<int64_t>(dims.size()) != rank) {
    c.fail(fmt::format("permute: {} has rank {}, but dims {} has {} entries", c.arg(0),
                       rank, c.kw("dims").str(), dims.size()));
  }
  std::vector<bool> seen(rank, false);
  Shape shape;
  for (auto d : dims) {
    int64_t a = c.axis(d, rank);
    if (seen[a]) c.fail(fmt::format("permute: dim {} appears twice in {}", d, c.kw("dims").str()));
    seen[a] = true;
    shape.push_back(t.shape[a]);
  }
  return ValueType::tensor(shape, t.dtype);
}

ValueType unsqueeze(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const int64_t rank = static_cast<int64_t>(t.shape.size()) + 1;
  int64_t d = c.integer("dim");
  if (d < -rank || d >= rank) c.fail(fmt::format("unsqueeze: dim={} is out of range", d));
  if (d < 0) d += rank;
  Shape shape = t.shape;
  shape.insert(shape.begin() + d, Dim(1));
  return ValueType::tensor(shape, t.dtype);
}

ValueType squeeze(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const int64_t d = c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  Shape shape = t.shape;
  if (shape[d].is_static() && shape[d].size() != 1) {
    c.fail(fmt::format("squeeze: dim {} of {} {} has size {}, not 1\n"
                       "  fix: select({}, {}, 0)   or   mean({}, dim={})",
                       d, c.arg(0), t.str(), shape[d].size(), c.arg(0), d, c.arg(0), d));
  }
  shape.erase(shape.begin() + d);
  return ValueType::tensor(shape, t.dtype);
}

ValueType reduce_dim(const OpContext& c) {  // mean, select
  const ValueType& t = c.tensor(0);
  const int64_t d = c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  if (c.node.op == "select") {
    int64_t index = c.integer("index");
    if (t.shape[d].is_static() &&
        (index >= t.shape[d].size() || index < -t.shape[d].size())) {
      c.fail(fmt::format("select: index {} is out of range for dim {} of size {}",
                         index, d, t.shape[d].size()));
    }
  } else {
    c.need_float(t, 0);
  }
  Shape shape = t.shape;
  shape.erase(shape.begin() + d);
  return ValueType::tensor(shape, t.dtype);
}

ValueType pool(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const std::string kind = c.kw("kind").s;
  if (kind != "avg" && kind != "max") {
    c.fail(fmt::format("pool: kind must be \"avg\" or \"max\", got \"{}\"", kind));
  }
  if (t.shape.size() < 3 || t.shape.size() > 5) {
    c.fail(fmt::format("pool needs [N, C, ...spatial] (rank 3 to 5), but {} is {}\n  fix: {}",
                       c.arg(0), t.str(),
                       t.shape.size() < 3 ? c.arg(0) + " (it has no spatial dims to pool)"
                                          : adapt_fix(c.arg(0), t, {t.shape[0], t.shape[1]})));
  }
  c.need_float(t, 0);
  c.note = fmt::format("global {} pooling", kind);
  return ValueType::tensor({t.shape[0], t.shape[1]}, t.dtype);
}

ValueType resize(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  const auto size = c.ints("size");
  if (t.shape.size() != size.size() + 2 || size.empty() || size.size() > 2) {
    c.fail(fmt::format("resize({}, {}) needs a tensor of rank {} ([N, C, ...]), got {}",
                       c.arg(0), c.kw("size").str(), size.size() + 2, t.str()));
  }
  Shape shape = {t.shape[0], t.shape[1]};
  for (auto s : size) {
    if (s <= 0) c.fail(fmt::format("resize: size {} must be positive", s));
    shape.emplace_back(s);
  }
  c.need_float(t, 0);
  return ValueType::tensor(shape, t.dtype);
}

/// Fails unless a layer's size argument is in 1..2^31.
void check_size(const OpContext& c, const std::string& what, int64_t v) {
  if (v <= 0) c.fail(fmt::format("{}={} must be positive", what, v));
  if (v > kMaxSize) c.fail(fmt::format("{}={} is too large (at most 2^31)", what, v));
}

ValueType linear(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.empty()) c.fail("linear needs at least one dimension");
  c.need_float(t, 0);
  const int64_t in = c.static_dim(t, t.shape.size() - 1, "input size (last dim)");
  const int64_t out = c.integer("out");
  check_size(c, "linear: out", out);
  c.note = fmt::format("Linear({} -> {})", in, out);
  Shape shape = t.shape;
  shape.back() = out;
  return ValueType::tensor(shape, t.dtype);
}

ValueType mlp(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.empty()) c.fail("mlp needs at least one dimension");
  c.need_float(t, 0);
  int64_t in = c.static_dim(t, t.shape.size() - 1, "input size (last dim)");
  const auto sizes = c.ints("sizes");
  const std::string act = c.kw("act").s;
  if (sizes.empty()) c.fail("mlp: sizes must not be empty");
  if (act != "relu" && act != "gelu" && act != "tanh" && act != "sigmoid" && act != "none") {
    c.fail(fmt::format("mlp: act must be relu, gelu, tanh, sigmoid or none, got \"{}\"", act));
  }
  c.note = "MLP(" + std::to_string(in);
  for (auto s : sizes) {
    check_size(c, "mlp: size", s);
    c.note += " -> " + std::to_string(s);
  }
  c.note += ")";
  Shape shape = t.shape;
  shape.back() = sizes.back();
  return ValueType::tensor(shape, t.dtype);
}

Dim conv_size(const OpContext& c, const Dim& in, int64_t k, int64_t s, int64_t p) {
  if (in.is_static()) {
    int64_t out = (in.size() + 2 * p - k) / s + 1;
    if (in.size() + 2 * p < k || out <= 0) {
      c.fail(fmt::format("conv: kernel {} does not fit an input of size {} with padding {}",
                         k, in.size(), p));
    }
    return Dim(out);
  }
  if (s == 1 && 2 * p == k - 1) return in;
  c.fail(fmt::format("conv: cannot tell the output size for the dynamic size {} "
                     "(kernel {}, stride {}, padding {})\n  fix: declare that "
                     "dimension with a fixed size in inputs",
                     in.str(), k, s, p));
}

ValueType conv(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.size() != 3 && t.shape.size() != 4) {
    c.fail(fmt::format("conv needs [N, C, L] or [N, C, H, W], but {} is {}{}", c.arg(0),
                       t.str(),
                       t.shape.size() == 2 && t.shape[1].is_static()
                           ? fmt::format("\n  fix: linear({}, {})   or   conv(reshape({}, "
                                         "[-1, 1, {}]), {})",
                                         c.arg(0), c.integer("out"), c.arg(0),
                                         t.shape[1].size(), c.integer("out"))
                           : ""));
  }
  c.need_float(t, 0);
  const int64_t in = c.static_dim(t, 1, "channel count (dim 1)");
  const int64_t out = c.integer("out"), k = c.integer("kernel"),
                s = c.integer("stride"), p = c.integer("padding");
  if (out <= 0 || k <= 0 || s <= 0 || p < 0) {
    c.fail("conv: out, kernel and stride must be positive and padding not negative");
  }
  check_size(c, "conv: out", out);
  check_size(c, "conv: kernel", k);
  Shape shape = {t.shape[0], Dim(out)};
  for (size_t d = 2; d < t.shape.size(); ++d) {
    shape.push_back(conv_size(c, t.shape[d], k, s, p));
  }
  c.note = fmt::format("Conv{}d({} -> {}, kernel {})", t.shape.size() - 2, in, out, k);
  return ValueType::tensor(shape, t.dtype);
}

ValueType embedding(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  if (!at::isIntegralType(t.dtype, false)) {
    c.fail(fmt::format("embedding needs integer token ids, but {} is {}", c.arg(0),
                       t.str()));
  }
  check_size(c, "embedding: vocab", c.integer("vocab"));
  check_size(c, "embedding: dim", c.integer("dim"));
  Shape shape = t.shape;
  shape.emplace_back(c.integer("dim"));
  c.note = fmt::format("Embedding({}, {})", c.integer("vocab"), c.integer("dim"));
  return ValueType::tensor(shape, at::kFloat);
}

ValueType layernorm(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.empty()) c.fail("layernorm needs at least one dimension");
  c.need_float(t, 0);
  c.note = fmt::format("LayerNorm({})", c.static_dim(t, t.shape.size() - 1, "last dim"));
  return t;
}

ValueType batchnorm(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  if (t.shape.size() < 2 || t.shape.size() > 5) {
    c.fail(fmt::format("batchnorm needs [N, C, ...], but {} is {}", c.arg(0), t.str()));
  }
  c.need_float(t, 0);
  c.note = fmt::format("BatchNorm({})", c.static_dim(t, 1, "channel count (dim 1)"));
  return t;
}

ValueType normalize(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  c.need_float(t, 0);
  const auto& mean = c.kw("mean").items;
  const auto& std = c.kw("std").items;
  if (t.shape.size() < 2) c.fail("normalize needs [N, C, ...]");
  const int64_t channels = c.static_dim(t, 1, "channel count (dim 1)");
  if (static_cast<int64_t>(mean.size()) != channels ||
      static_cast<int64_t>(std.size()) != channels) {
    c.fail(fmt::format("normalize: {} has {} channels, but mean has {} and std {} values",
                       c.arg(0), channels, mean.size(), std.size()));
  }
  for (const auto& s : std) {
    if (s.number() == 0.0) c.fail("normalize: std values must not be 0");
  }
  return t;
}

ValueType float_unary(const OpContext& c) {
  const ValueType& t = c.tensor(0);
  c.need_float(t, 0);
  if (c.node.op == "softmax" || c.node.op == "l2norm") {
    c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  }
  if (c.node.op == "dropout") {
    double p = c.number("p");
    if (p < 0.0 || p > 1.0) c.fail(fmt::format("dropout: p={} must be in [0, 1]", p));
  }
  return t;
}

ValueType any_unary(const OpContext& c) { return same(c.tensor(0)); }

using Rule = ValueType (*)(const OpContext&);

const std::map<std::string, Rule>& rules() {
  static const std::map<std::string, Rule> kRules = {
      {"concat", concat},        {"add", merge_elementwise},
      {"sub", merge_elementwise}, {"mul", merge_elementwise},
      {"stack", stack},          {"flatten", flatten},
      {"reshape", reshape},      {"permute", permute},
      {"unsqueeze", unsqueeze},  {"squeeze", squeeze},
      {"mean", reduce_dim},      {"select", reduce_dim},
      {"pool", pool},            {"resize", resize},
      {"linear", linear},        {"conv", conv},
      {"mlp", mlp},              {"embedding", embedding},
      {"layernorm", layernorm},  {"batchnorm", batchnorm},
      {"scale_offset", float_unary}, {"normalize", normalize},
      {"relu", any_unary},       {"gelu", float_unary},
      {"sigmoid", float_unary},  {"tanh", float_unary},
      {"softmax", float_unary},  {"dropout", float_unary},
      {"l2norm", float_unary},
  };
  return kRules;
}

}  // namespace

ValueType infer_op(const Graph& graph, const Node& node,
                   const std::vector<const ValueType*>& args, std::string& note) {
  auto it = rules().find(node.op);
  if (it == rules().end()) {
    shape_error(node, fmt::format("{} is not supported yet", node.op));
  }
  OpContext c{graph, node, args, note};
  return it->second(c);
}

}  // namespace stitch
