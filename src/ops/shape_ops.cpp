// Shape ops: flatten, reshape, permute, unsqueeze, squeeze, mean, select,
// pool (global, to [N, C]) and resize. No weights.

#include <fmt/format.h>

#include "ops/op_def.h"

namespace stitch {

namespace {

using K = ParamDef::Kind;

ValueType flatten(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const int64_t rank = static_cast<int64_t>(t.shape.size());
  if (rank == 0) return ValueType::tensor({Dim(1)}, t.dtype);
  const int64_t start = c.axis(c.integer("start"), rank, "start");
  Shape shape(t.shape.begin(), t.shape.begin() + start);
  shape.push_back(numel(Shape(t.shape.begin() + start, t.shape.end())));
  return ValueType::tensor(shape, t.dtype);
}

/// A reshape that keeps the batch: [-1, elements per sample].
std::string reshape_fix(const ShapeCall& c, const ValueType& t) {
  if (t.shape.size() >= 2) {
    const Dim per_sample = numel(Shape(t.shape.begin() + 1, t.shape.end()));
    if (per_sample.is_static()) {
      return fmt::format(
          "reshape({}, [-1, {}])   ({} elements per sample; the sizes "
          "after -1 must multiply to it)",
          c.arg(0), per_sample.size(), per_sample.size());
    }
  }
  return fmt::format("flatten({})", c.arg(0));
}

ValueType reshape(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const auto target = c.ints("shape");
  Dim known(1);
  int infer = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1 && infer < 0) {
      infer = static_cast<int>(i);
    } else if (target[i] <= 0) {
      c.fail(
          fmt::format("reshape: invalid size {} in {} (sizes are positive, "
                      "with at most one -1)",
                      target[i], c.kw("shape").str()));
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
      c.fail(
          fmt::format("cannot reshape {} {} ({} elements) to {}: {} is not a "
                      "multiple of {}\n  fix: {}",
                      c.arg(0), t.str(), total.str(), c.kw("shape").str(), total.str(), known.str(),
                      reshape_fix(c, t)));
    }
    shape[infer] = *rest;
  } else if (known != total) {
    c.fail(fmt::format("cannot reshape {} {} ({} elements) to {} ({} elements)\n  fix: {}",
                       c.arg(0), t.str(), total.str(), c.kw("shape").str(), known.str(),
                       reshape_fix(c, t)));
  }
  return ValueType::tensor(shape, t.dtype);
}

ValueType permute(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const auto dims = c.ints("dims");
  const int64_t rank = static_cast<int64_t>(t.shape.size());
  if (static_cast<int64_t>(dims.size()) != rank) {
    c.fail(fmt::format("permute: {} has rank {}, but dims {} has {} entries", c.arg(0), rank,
                       c.kw("dims").str(), dims.size()));
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

ValueType unsqueeze(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const int64_t rank = static_cast<int64_t>(t.shape.size()) + 1;
  int64_t d = c.integer("dim");
  if (d < -rank || d >= rank) c.fail(fmt::format("unsqueeze: dim={} is out of range", d));
  if (d < 0) d += rank;
  Shape shape = t.shape;
  shape.insert(shape.begin() + d, Dim(1));
  return ValueType::tensor(shape, t.dtype);
}

ValueType squeeze(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const int64_t d = c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  Shape shape = t.shape;
  if (shape[d].is_static() && shape[d].size() != 1) {
    c.fail(
        fmt::format("squeeze: dim {} of {} {} has size {}, not 1\n"
                    "  fix: select({}, {}, 0)   or   mean({}, dim={})",
                    d, c.arg(0), t.str(), shape[d].size(), c.arg(0), d, c.arg(0), d));
  }
  shape.erase(shape.begin() + d);
  return ValueType::tensor(shape, t.dtype);
}

/// The shape without dim d.
ValueType drop_dim(const ValueType& t, int64_t d) {
  Shape shape = t.shape;
  shape.erase(shape.begin() + d);
  return ValueType::tensor(shape, t.dtype);
}

ValueType mean(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const int64_t d = c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  c.need_float(t, 0);
  return drop_dim(t, d);
}

ValueType select(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const int64_t d = c.axis(c.integer("dim"), static_cast<int64_t>(t.shape.size()));
  const int64_t index = c.integer("index");
  if (t.shape[d].is_static() && (index >= t.shape[d].size() || index < -t.shape[d].size())) {
    c.fail(fmt::format("select: index {} is out of range for dim {} of size {}", index, d,
                       t.shape[d].size()));
  }
  return drop_dim(t, d);
}

ValueType pool(const ShapeCall& c) {
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

ValueType resize(const ShapeCall& c) {
  const ValueType& t = c.tensor(0);
  const auto size = c.ints("size");
  if (t.shape.size() != size.size() + 2 || size.empty() || size.size() > 2) {
    c.fail(fmt::format("resize({}, {}) needs a tensor of rank {} ([N, C, ...]), got {}", c.arg(0),
                       c.kw("size").str(), size.size() + 2, t.str()));
  }
  Shape shape = {t.shape[0], t.shape[1]};
  for (auto s : size) {
    if (s <= 0) c.fail(fmt::format("resize: size {} must be positive", s));
    shape.emplace_back(s);
  }
  c.need_float(t, 0);
  return ValueType::tensor(shape, t.dtype);
}

std::string lower_flatten(const LowerCall& c) {
  return fmt::format("torch.flatten({}, {})", c.x(), c.kw("start").i);
}
std::string lower_reshape(const LowerCall& c) {
  return fmt::format("torch.reshape({}, {})", c.x(), ints_text(c.kw("shape")));
}
std::string lower_permute(const LowerCall& c) {
  return fmt::format("{}.permute({})", c.x(), ints_text(c.kw("dims")));
}
std::string lower_unsqueeze(const LowerCall& c) {
  return fmt::format("torch.unsqueeze({}, {})", c.x(), c.kw("dim").i);
}
std::string lower_squeeze(const LowerCall& c) {
  return fmt::format("torch.squeeze({}, {})", c.x(), c.kw("dim").i);
}
std::string lower_mean(const LowerCall& c) {
  return fmt::format("torch.mean({}, [{}])", c.x(), c.kw("dim").i);
}
std::string lower_select(const LowerCall& c) {
  return fmt::format("torch.select({}, {}, {})", c.x(), c.kw("dim").i, c.kw("index").i);
}
std::string lower_pool(const LowerCall& c) {
  std::string dims;
  for (size_t d = 2; d < c.rank(); ++d) dims += (d > 2 ? ", " : "") + std::to_string(d);
  return fmt::format("torch.{}({}, [{}])", c.kw("kind").s == "avg" ? "mean" : "amax", c.x(), dims);
}
std::string lower_resize(const LowerCall& c) {
  if (c.rank() == 4) {
    return fmt::format("torch.upsample_bilinear2d({}, {}, False, None, None)", c.x(),
                       ints_text(c.kw("size")));
  }
  return fmt::format("torch.upsample_linear1d({}, {}, False, None)", c.x(),
                     ints_text(c.kw("size")));
}

}  // namespace

std::vector<OpDef> shape_ops() {
  const ParamDef x = required("x", K::Tensor);
  return {
      {{"flatten", "shape", {x, optional("start", K::Int, 1)}}, flatten, lower_flatten},
      {{"reshape", "shape", {x, required("shape", K::IntList)}}, reshape, lower_reshape},
      {{"permute", "shape", {x, required("dims", K::IntList)}}, permute, lower_permute},
      {{"unsqueeze", "shape", {x, required("dim", K::Int)}}, unsqueeze, lower_unsqueeze},
      {{"squeeze", "shape", {x, required("dim", K::Int)}}, squeeze, lower_squeeze},
      {{"mean", "shape", {x, optional("dim", K::Int, 1)}}, mean, lower_mean},
      {{"select", "shape", {x, required("dim", K::Int), required("index", K::Int)}},
       select,
       lower_select},
      {{"pool", "shape", {x, optional("kind", K::String, "avg")}}, pool, lower_pool},
      {{"resize", "shape", {x, required("size", K::IntList)}}, resize, lower_resize},
  };
}

}  // namespace stitch
