// Merge ops: concat, stack, add, mul, and sub (arithmetic). They take two or
// more values; add, sub and mul also take numbers (2.0 * x). And ensemble,
// which combines models' outputs of one shape (family "combine").

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "ops/op_def.h"

namespace stitch {

namespace {

using K = ParamDef::Kind;

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
    if (!da)
      o = *db;
    else if (!db)
      o = *da;
    else if (*da == *db)
      o = *da;
    else if (da->is_static() && da->size() == 1)
      o = *db;
    else if (db->is_static() && db->size() == 1)
      o = *da;
    else
      return std::nullopt;
  }
  return out;
}

ValueType merge_elementwise(const ShapeCall& c) {
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
          c.node.op, c.arg(0), result->str(), c.arg(i), t.str(), adapt_fix(c.arg(i), t, shape)));
    }
    if (t.dtype != result->dtype) {
      c.fail(fmt::format("cannot {} {} ({}) and {} ({}): different dtypes", c.node.op, c.arg(0),
                         dtype_str(result->dtype), c.arg(i), dtype_str(t.dtype)));
    }
    shape = *b;
  }
  return ValueType::tensor(shape, result->dtype);
}

ValueType concat(const ShapeCall& c) {
  const ValueType& first = c.tensor(0);
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  const int64_t dim = c.axis(c.integer("dim"), rank);
  Shape shape = first.shape;
  for (size_t i = 1; i < c.args.size(); ++i) {
    const ValueType& t = c.tensor(i);
    auto mismatch = [&](const std::string& why, const std::string& fix) {
      c.fail(
          fmt::format("cannot concat {} and {} along dim {}: {}\n  {} is {}\n  {} is {}\n  fix: {}",
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

ValueType stack(const ShapeCall& c) {
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

ValueType ensemble(const ShapeCall& c) {
  const std::string how = c.kw("how").s;
  if (how != "mean" && how != "logsumexp" && how != "vote") {
    c.fail(
        fmt::format("ensemble: how must be \"mean\", \"logsumexp\" or \"vote\", got \"{}\"", how));
  }
  const ValueType& first = c.tensor(0);
  c.need_float(first, 0);
  for (size_t i = 1; i < c.args.size(); ++i) {
    const ValueType& t = c.tensor(i);
    if (t.shape != first.shape || t.dtype != first.dtype) {
      c.fail(fmt::format(
          "cannot ensemble {} {} and {} {}: an ensemble combines outputs of one "
          "shape and dtype\n  fix: {}",
          c.arg(0), first.str(), c.arg(i), t.str(), adapt_fix(c.arg(i), t, first.shape)));
    }
  }
  if (how != "vote") {
    c.note =
        fmt::format("{} of {} outputs", how == "mean" ? "mean" : "log-mean-exp", c.args.size());
    return first;
  }
  if (first.shape.empty()) {
    c.fail(
        fmt::format("ensemble(how=\"vote\") takes the argmax over the last dim (the "
                    "classes), but {} is 0-d",
                    c.arg(0)));
  }
  c.note = fmt::format("majority vote of {} argmaxes", c.args.size());
  Shape shape = first.shape;
  shape.pop_back();
  return ValueType::tensor(shape, at::kLong);
}

std::string lower_ensemble(const LowerCall& c) {
  const std::string stacked = fmt::format("torch.stack([{}], 0)", fmt::join(c.xs, ", "));
  const std::string& how = c.kw("how").s;
  if (how == "mean") return fmt::format("torch.mean({}, 0)", stacked);
  if (how == "logsumexp") {
    // log(mean(exp(x_i))) = logsumexp(x_i) - log(n)
    return fmt::format("(torch.logsumexp({}, 0) - {:.17g})", stacked,
                       std::log(static_cast<double>(c.xs.size())));
  }
  // The most frequent argmax; argmax of the counts takes the lowest class
  // of a tie. one_hot counts classes up to the largest voted one where the
  // number of classes is dynamic, which decides the same.
  const Dim& classes = c.input.shape.back();
  return fmt::format(
      "torch.argmax(torch.sum(torch.one_hot(torch.argmax({}, -1), "
      "{}), 0), -1)",
      stacked, classes.is_static() ? classes.size() : -1);
}

std::string lower_concat(const LowerCall& c) {
  return fmt::format("torch.cat([{}], {})", fmt::join(c.xs, ", "), c.kw("dim").i);
}
std::string lower_stack(const LowerCall& c) {
  return fmt::format("torch.stack([{}], {})", fmt::join(c.xs, ", "), c.kw("dim").i);
}
std::string lower_add(const LowerCall& c) {
  return fmt::format("{}", fmt::join(c.xs, " + "));
}
std::string lower_sub(const LowerCall& c) {
  return fmt::format("{}", fmt::join(c.xs, " - "));
}
std::string lower_mul(const LowerCall& c) {
  return fmt::format("{}", fmt::join(c.xs, " * "));
}

}  // namespace

std::vector<OpDef> merge_ops() {
  return {
      {{"concat", "merge", {required("xs", K::Tensors), optional("dim", K::Int, 1)}, 1, 0},
       concat,
       lower_concat},
      {{"stack", "merge", {required("xs", K::Tensors), optional("dim", K::Int, 1)}, 1, 0},
       stack,
       lower_stack},
      {{"add", "merge", {required("xs", K::Scalar)}, 2, 0}, merge_elementwise, lower_add},
      {{"mul", "merge", {required("xs", K::Scalar)}, 2, 2}, merge_elementwise, lower_mul},
      {{"sub", "arithmetic", {required("xs", K::Scalar)}, 2, 2}, merge_elementwise, lower_sub},
      {{"ensemble",
        "combine",
        {required("xs", K::Tensors), optional("how", K::String, "mean")},
        2,
        0},
       ensemble,
       lower_ensemble},
  };
}

}  // namespace stitch
