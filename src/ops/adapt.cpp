#include "ops/adapt.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "core/assert.h"
#include "ops/op_def.h"

namespace stitch {

namespace {

// A target dim that matches any size ("?" in messages).
const Dim kAny = Dim::symbol("?");

bool is_any(const Dim& d) {
  return d.symbols().size() == 1 && d.symbols()[0] == "?";
}

const Literal& kwarg(const AdaptStep& step, const std::string& key) {
  auto it = std::find_if(step.kwargs.begin(), step.kwargs.end(),
                         [&](const auto& kv) { return kv.first == key; });
  STITCH_INTERNAL_ASSERT(it != step.kwargs.end(), "adapt step {} has no '{}'", step.op, key);
  return it->second;
}

Shape slice(const Shape& s, size_t begin, size_t end) {
  return Shape(s.begin() + begin, s.begin() + end);
}

/// Target dims named by sizes the source does not have (H, W, T...) match
/// any size: `to=[N, 3, H, W]` only pins N and 3.
Shape normalize_target(const Shape& target, const Shape& source) {
  std::set<std::string> known;
  for (const auto& d : source) known.insert(d.symbols().begin(), d.symbols().end());
  Shape out;
  for (const auto& d : target) {
    bool unknown = false;
    for (const auto& s : d.symbols()) unknown = unknown || !known.count(s);
    out.push_back(unknown ? kAny : d);
  }
  return out;
}

bool dim_fits(const Dim& have, const Dim& want) {
  return is_any(want) || have == want;
}

// ---- Steps -------------------------------------------------------------------

AdaptStep flatten_step(const Shape& s, int64_t start) {
  Shape out = slice(s, 0, start);
  out.push_back(numel(slice(s, start, s.size())));
  return {"flatten", {{"start", start}}, out};
}

AdaptStep squeeze_step(const Shape& s, int64_t dim) {
  Shape out = s;
  out.erase(out.begin() + dim);
  return {"squeeze", {{"dim", dim}}, out};
}

AdaptStep unsqueeze_step(const Shape& s, int64_t dim) {
  Shape out = s;
  out.insert(out.begin() + dim, Dim(1));
  return {"unsqueeze", {{"dim", dim}}, out};
}

AdaptStep pool_step(const Shape& s) {
  return {"pool", {{"kind", "avg"}}, {s[0], s[1]}};
}

AdaptStep mean_step(const Shape& s, int64_t dim) {
  Shape out = s;
  out.erase(out.begin() + dim);
  return {"mean", {{"dim", dim}}, out};
}

AdaptStep permute_step(const Shape& s, const std::vector<int64_t>& dims) {
  Shape out;
  for (auto d : dims) out.push_back(s[d]);
  return {"permute", {{"dims", Literal(dims)}}, out};
}

/// reshape(x, [-1, rest...]): the batch stays dim 0.
AdaptStep reshape_step(const Shape& s, const std::vector<int64_t>& rest) {
  std::vector<int64_t> sizes = {-1};
  sizes.insert(sizes.end(), rest.begin(), rest.end());
  Shape out = {s[0]};
  for (auto r : rest) out.emplace_back(r);
  return {"reshape", {{"shape", Literal(sizes)}}, out};
}

AdaptStep resize_step(const Shape& s, const std::vector<int64_t>& size) {
  Shape out = {s[0], s[1]};
  for (auto v : size) out.emplace_back(v);
  return {"resize", {{"size", Literal(size)}}, out};
}

AdaptStep linear_step(const Shape& s, int64_t features) {
  Shape out = s;
  out.back() = features;
  return {"linear", {{"out", features}, {"bias", true}}, out};
}

AdaptStep conv_step(const Shape& s, int64_t channels) {
  Shape out = s;
  out[1] = channels;
  return {
      "conv",
      {{"out", channels}, {"kernel", int64_t{1}}, {"stride", int64_t{1}}, {"padding", int64_t{0}}},
      out};
}

/// All static sizes of dims [begin, end), or nullopt.
std::optional<std::vector<int64_t>> static_sizes(const Shape& s, size_t begin) {
  std::vector<int64_t> out;
  for (size_t i = begin; i < s.size(); ++i) {
    if (!s[i].is_static()) return std::nullopt;
    out.push_back(s[i].size());
  }
  return out;
}

// ---- The planner ---------------------------------------------------------------

using Steps = std::vector<AdaptStep>;

/// Tries adapters from the least machinery to the most and keeps the first
/// whose result fits.
class Planner {
 public:
  Planner(const ValueType& from, const AdaptTarget& target)
      : from_(from.shape),
        floating_(at::isFloatingType(from.dtype)),
        match_(target.match),
        want_(normalize_target(target.shape, from.shape)) {}

  std::optional<AdapterPlan> run() {
    if (from_.empty() || want_.empty()) return std::nullopt;
    for (const auto& steps : candidates()) {
      const Shape& out = steps.empty() ? from_ : steps.back().out;
      if (fits(out)) return AdapterPlan{from_, out, steps};
    }
    return std::nullopt;
  }

 private:
  bool fits(const Shape& s) const {
    if (s.size() < 2 && match_ != AdaptTarget::Match::Exact) return false;
    switch (match_) {
      case AdaptTarget::Match::Exact:
        if (s.size() != want_.size()) return false;
        for (size_t i = 0; i < s.size(); ++i) {
          if (!dim_fits(s[i], want_[i])) return false;
        }
        return true;
      case AdaptTarget::Match::Features:
        return dim_fits(s[0], want_[0]) && dim_fits(numel(slice(s, 1, s.size())), want_[1]);
      case AdaptTarget::Match::LastDim:
        return dim_fits(s[0], want_[0]) && dim_fits(s.back(), want_.back());
      case AdaptTarget::Match::Channels:
        return dim_fits(s[0], want_[0]) && dim_fits(s[1], want_[1]);
    }
    return false;
  }

  int64_t rank() const { return static_cast<int64_t>(from_.size()); }

  // NOTE: the order is the preference. Shape-only adapters first (they keep
  // every value), then reductions (pooling), then permute before reshape (a
  // permute keeps each value's meaning, a reshape of the same sizes would
  // scramble them), then resize (interpolates), and a learned projection
  // last.
  std::vector<Steps> candidates() const {
    std::vector<Steps> out = {{}};
    for (int64_t k = 1; k + 1 < rank(); ++k) out.push_back({flatten_step(from_, k)});
    for (int64_t d = 1; d < rank(); ++d) {
      if (from_[d] == Dim(1)) out.push_back({squeeze_step(from_, d)});
    }
    for (int64_t d = 1; d <= rank(); ++d) out.push_back({unsqueeze_step(from_, d)});
    if (floating_ && rank() >= 3 && rank() <= 5) out.push_back({pool_step(from_)});
    if (floating_) {
      for (int64_t d = 1; d < rank(); ++d) out.push_back({mean_step(from_, d)});
    }
    add_permutes(out);
    add_reshape(out);
    if (floating_) {
      add_resizes(out);
      add_projections(out);
    }
    return out;
  }

  void add_permutes(std::vector<Steps>& out) const {
    if (match_ != AdaptTarget::Match::Exact || want_.size() != from_.size() || rank() < 3) {
      return;
    }
    std::vector<int64_t> dims(rank());
    std::iota(dims.begin(), dims.end(), 0);
    // The batch stays first; the rest in lexicographic order, so the
    // permutation closest to the identity comes first.
    while (std::next_permutation(dims.begin() + 1, dims.end())) {
      out.push_back({permute_step(from_, dims)});
    }
  }

  void add_reshape(std::vector<Steps>& out) const {
    auto rest = static_sizes(want_, 1);
    if (match_ != AdaptTarget::Match::Exact || !rest || want_.size() < 2) return;
    if (numel(slice(from_, 1, from_.size())) == numel(slice(want_, 1, want_.size()))) {
      out.push_back({reshape_step(from_, *rest)});
    }
  }

  /// Sizes [h, w] with h * w == area and the source's aspect ratio.
  std::optional<std::vector<int64_t>> same_aspect(int64_t area) const {
    auto spatial = static_sizes(from_, 2);
    if (!spatial || area <= 0) return std::nullopt;
    if (spatial->size() == 1) return std::vector<int64_t>{area};
    const int64_t h = (*spatial)[0], w = (*spatial)[1];
    for (int64_t y = 1; y <= area; ++y) {
      if (area % y == 0 && y * w == (area / y) * h) return std::vector<int64_t>{y, area / y};
    }
    return std::nullopt;
  }

  void add_resizes(std::vector<Steps>& out) const {
    if (rank() != 3 && rank() != 4) return;
    if (match_ == AdaptTarget::Match::Exact && want_.size() == from_.size()) {
      if (auto size = static_sizes(want_, 2)) {
        out.push_back({resize_step(from_, *size)});
      }
    }
    // A model that flattens a map of C channels into F features takes a map
    // of F / C positions: resizing keeps every channel's meaning.
    const bool flat = match_ == AdaptTarget::Match::Features ||
                      (want_.size() == 2 && match_ != AdaptTarget::Match::Channels);
    if (!flat || !want_[1].is_static() || !from_[1].is_static()) return;
    const int64_t features = want_[1].size(), channels = from_[1].size();
    if (features % channels != 0) return;
    if (auto size = same_aspect(features / channels)) {
      AdaptStep resize = resize_step(from_, *size);
      if (match_ == AdaptTarget::Match::Features) {
        out.push_back({resize});
      } else {
        out.push_back({resize, flatten_step(resize.out, 1)});
      }
    }
  }

  /// [N, C, ...] reduced to [N, C]: a sequence [N, T, D] (T dynamic) is
  /// averaged over T, a feature map is pooled globally, a 1x1 map flattened.
  std::optional<AdaptStep> reduce_to_vector() const {
    if (rank() == 3 && !from_[1].is_static()) return mean_step(from_, 1);
    if (rank() >= 3 && numel(slice(from_, 2, from_.size())) == Dim(1)) {
      return flatten_step(from_, 1);  // [N, C, 1, 1]: nothing to pool
    }
    if (rank() >= 3 && rank() <= 5) return pool_step(from_);
    return std::nullopt;
  }

  void add_projections(std::vector<Steps>& out) const {
    const Dim& want_last = want_.back();
    const bool vector_target = match_ != AdaptTarget::Match::Exact || want_.size() == 2;
    if (match_ == AdaptTarget::Match::Channels) {
      if (!want_[1].is_static() || !from_[1].is_static()) return;
      if (rank() == 3 || rank() == 4) {
        out.push_back({conv_step(from_, want_[1].size())});
      } else if (rank() == 2) {
        out.push_back({linear_step(from_, want_[1].size())});
      }
      return;
    }
    if (vector_target && want_last.is_static()) {
      const int64_t features = want_last.size();
      const bool sequence = rank() == 3 && !from_[1].is_static();
      if (match_ == AdaptTarget::Match::LastDim && sequence && from_[2].is_static()) {
        out.push_back({linear_step(from_, features)});  // keeps the T of [N, T, D]
      }
      if (rank() == 2 && from_[1].is_static()) {
        out.push_back({linear_step(from_, features)});
      } else if (auto reduce = reduce_to_vector()) {
        if (reduce->out[1].is_static()) {
          out.push_back({*reduce, linear_step(reduce->out, features)});
        }
      }
      return;
    }
    if (want_.size() == from_.size() && (rank() == 3 || rank() == 4) && from_[1].is_static() &&
        want_[1].is_static()) {
      // A channel map: resize the positions if they differ, then a 1x1 conv.
      Steps steps;
      Shape s = from_;
      auto size = static_sizes(want_, 2);
      if (size && slice(s, 2, s.size()) != slice(want_, 2, want_.size())) {
        steps.push_back(resize_step(s, *size));
        s = steps.back().out;
      }
      steps.push_back(conv_step(s, want_[1].size()));
      out.push_back(steps);
    }
    if (want_.size() == from_.size() && want_last.is_static() && from_.back().is_static()) {
      out.push_back({linear_step(from_, want_last.size())});
    }
    auto rest = static_sizes(want_, 1);
    if (rank() == 2 && from_[1].is_static() && rest && want_.size() > 2) {
      // A vector into a map: project to its element count, then reshape.
      AdaptStep project = linear_step(from_, numel(slice(want_, 1, want_.size())).size());
      out.push_back({project, reshape_step(project.out, *rest)});
    }
  }

  Shape from_;
  bool floating_;
  AdaptTarget::Match match_;
  Shape want_;
};

std::string step_how(const AdaptStep& step, const Shape& in) {
  const std::string& op = step.op;
  if (op == "flatten") {
    const int64_t start = kwarg(step, "start").i;
    return start == 1 ? "flatten" : fmt::format("flatten from dim {}", start);
  }
  if (op == "squeeze") return fmt::format("dropping the size-1 dim {}", kwarg(step, "dim").i);
  if (op == "unsqueeze") return fmt::format("adding a size-1 dim {}", kwarg(step, "dim").i);
  if (op == "pool") return "global average pooling";
  if (op == "mean") return fmt::format("averaging over dim {}", kwarg(step, "dim").i);
  if (op == "permute") return "permute " + kwarg(step, "dims").str();
  if (op == "reshape") return "reshape to " + kwarg(step, "shape").str();
  if (op == "resize") {
    std::vector<std::string> sizes;
    for (const auto& v : kwarg(step, "size").items) sizes.push_back(std::to_string(v.i));
    return fmt::format("resize (interpolation) to {}", fmt::join(sizes, "x"));
  }
  if (op == "linear") {
    return fmt::format("a learned projection Linear({} -> {})", in.back().str(),
                       kwarg(step, "out").i);
  }
  if (op == "conv") {
    return fmt::format("a learned 1x1 Conv{}d({} -> {})", in.size() - 2, in[1].str(),
                       kwarg(step, "out").i);
  }
  return op;
}

}  // namespace

Dim any_dim() {
  return kAny;
}
bool is_any_dim(const Dim& d) {
  return is_any(d);
}

// ---- AdaptStep, AdapterPlan ------------------------------------------------------

std::string AdaptStep::spec_text(const std::string& x) const {
  if (op == "flatten") {
    const int64_t start = kwarg(*this, "start").i;
    return start == 1 ? fmt::format("flatten({})", x)
                      : fmt::format("flatten({}, start={})", x, start);
  }
  if (op == "squeeze" || op == "unsqueeze") {
    return fmt::format("{}({}, {})", op, x, kwarg(*this, "dim").i);
  }
  if (op == "pool") return fmt::format("pool({}, \"avg\")", x);
  if (op == "mean") return fmt::format("mean({}, dim={})", x, kwarg(*this, "dim").i);
  if (op == "permute") return fmt::format("permute({}, {})", x, kwarg(*this, "dims").str());
  if (op == "reshape") return fmt::format("reshape({}, {})", x, kwarg(*this, "shape").str());
  if (op == "resize") return fmt::format("resize({}, {})", x, kwarg(*this, "size").str());
  if (op == "linear" || op == "conv") {
    return fmt::format("{}({}, {})", op, x, kwarg(*this, "out").i);
  }
  return fmt::format("{}({})", op, x);
}

bool AdapterPlan::learned() const {
  return std::any_of(steps.begin(), steps.end(), [](const AdaptStep& s) { return s.learned(); });
}

std::string AdapterPlan::how() const {
  if (steps.empty()) return "nothing (it fits as it is)";
  std::vector<std::string> parts;
  Shape in = from;
  for (const auto& step : steps) {
    parts.push_back(step_how(step, in));
    in = step.out;
  }
  return fmt::format("{}", fmt::join(parts, ", then "));
}

std::string AdapterPlan::note() const {
  if (steps.empty()) return fmt::format("adapt: {} fits as it is", shape_str(from));
  return fmt::format("adapt: {} -> {} by {}", shape_str(from), shape_str(to), how());
}

std::string AdapterPlan::spec_text(const std::string& x) const {
  std::string out = x;
  for (const auto& step : steps) out = step.spec_text(out);
  return out;
}

std::optional<AdapterPlan> plan_adapter(const ValueType& from, const AdaptTarget& target) {
  if (!from.is_tensor()) return std::nullopt;
  if (target.needs_integers) {
    // Token ids cannot be made from features; only integer tensors that
    // already fit pass.
    if (at::isFloatingType(from.dtype)) return std::nullopt;
  }
  return Planner(from, target).run();
}

std::vector<AdapterPlan> simple_adapters(const ValueType& from) {
  std::vector<AdapterPlan> out;
  const Shape& s = from.shape;
  const int64_t rank = static_cast<int64_t>(s.size());
  auto add = [&](AdaptStep step) { out.push_back(AdapterPlan{s, step.out, {step}}); };
  if (rank >= 3) add(flatten_step(s, 1));
  for (int64_t d = rank - 1; d >= 1; --d) {
    if (s[d] == Dim(1)) add(squeeze_step(s, d));
  }
  if (at::isFloatingType(from.dtype) && rank >= 3 && rank <= 5) add(pool_step(s));
  if (at::isFloatingType(from.dtype) && rank >= 3) add(mean_step(s, 1));
  if (rank >= 1) add(unsqueeze_step(s, 1));
  return out;
}

std::string target_str(const AdaptTarget& target) {
  Shape shape = target.shape;
  switch (target.match) {
    case AdaptTarget::Match::Exact:
      return shape_str(shape);
    case AdaptTarget::Match::Features:
      return fmt::format("[{}, {}] (any shape with {} elements per sample)", shape[0].str(),
                         shape.back().str(), shape.back().str());
    case AdaptTarget::Match::LastDim:
      return fmt::format("[{}, {}] (or [{}, ..., {}])", shape[0].str(), shape.back().str(),
                         shape[0].str(), shape.back().str());
    case AdaptTarget::Match::Channels:
      return fmt::format("[{}, {}, ...]", shape[0].str(), shape[1].str());
  }
  return shape_str(shape);
}

std::vector<OpDef> adapt_ops() {
  using K = ParamDef::Kind;
  // No shape rule and no lowering here: check plans the adapter (its target
  // may be what a model expects, like=MODEL) and build writes that plan's
  // steps with the other ops' lowerings.
  return {{{"adapt",
            "adapt",
            {required("x", K::Tensor), optional("to", K::Shape, Literal()),
             optional("like", K::String, Literal())}}}};
}

}  // namespace stitch
