#pragma once
// adapt(x, to=SHAPE) and adapt(x, like=MODEL): choosing the smallest adapter
// that makes a tensor fit, and writing it as spec text for `fix:` lines.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stitch/graph.h"

namespace stitch {

/// What an adapter must produce.
struct AdaptTarget {
  enum class Match {
    Exact,     // every dim (N, 512, ...); names not in the source match any size
    Features,  // the model flattens: only the element count per sample matters
    LastDim,   // Linear, LayerNorm: any rank >= 2, the last dim must match
    Channels,  // BatchNorm: any rank >= 2, dim 1 must match
  };
  Shape shape;  // for Features, LastDim and Channels: [N, F]
  Match match = Match::Exact;
  bool needs_integers = false;  // an Embedding: token ids, not features
  std::string model;            // like=MODEL, or ""
  std::string description;      // "fc: Linear(in_features=512)"
};

/// One step of an adapter: a built-in op with its keyword arguments.
struct AdaptStep {
  std::string op;  // flatten, squeeze, unsqueeze, pool, mean, permute,
                   // reshape, resize, linear, conv
  Kwargs kwargs;   // complete: every parameter of the op but x
  Shape out;       // the shape after this step

  bool learned() const { return op == "linear" || op == "conv"; }
  /// The step applied to `x` as a spec expression: pool(x, "avg").
  std::string spec_text(const std::string& x) const;
};

/// The adapter chosen for a tensor: no steps when it fits as it is.
struct AdapterPlan {
  Shape from;
  Shape to;
  std::vector<AdaptStep> steps;

  bool learned() const;
  /// "global average pooling", "flatten, then a learned Linear(16 -> 10)".
  std::string how() const;
  /// "adapt: [N, 512, 7, 7] -> [N, 512] by global average pooling"
  std::string note() const;
  /// The adapter written out in spec syntax around `x`.
  std::string spec_text(const std::string& x) const;
};

/// The smallest adapter turning a tensor of `from` into `target`: nothing,
/// flatten/squeeze, global pooling, permute, reshape, resize, and only when
/// none of those fits a learned linear or 1x1 conv projection. nullopt when
/// nothing fits.
std::optional<AdapterPlan> plan_adapter(const ValueType& from, const AdaptTarget& target);

/// A target dim that matches any size ("?" in messages).
Dim any_dim();
bool is_any_dim(const Dim& d);

/// One-step shape-only adapters of a tensor (flatten, squeeze, unsqueeze,
/// pooling, mean), to try on a model whose expectation is unknown.
std::vector<AdapterPlan> simple_adapters(const ValueType& from);

/// "[N, 512]" for a target, with `?` for sizes that may be anything.
std::string target_str(const AdaptTarget& target);

}  // namespace stitch
