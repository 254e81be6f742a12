#include "check/adapt_target.h"

#include <fmt/format.h>

namespace stitch {

namespace {
bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}
}  // namespace

AdaptTarget target_from_expectation(const Expectation& e, const std::string& model) {
  AdaptTarget t;
  t.model = model;
  t.description = (e.layer.empty() ? "" : e.layer + ": ") + e.description +
                  (e.flattened ? ", after flattening" : "");
  for (size_t i = 0; i < e.shape.size(); ++i) {
    // Only the batch and the sizes the layer's weights fix are known.
    const bool known = i == 0 || e.shape[i].is_static();
    t.shape.push_back(known ? e.shape[i] : any_dim());
  }
  const std::string& d = e.description;
  if (e.flattened) {
    t.match = AdaptTarget::Match::Features;
  } else if (starts_with(d, "Linear(") || starts_with(d, "LayerNorm(")) {
    t.match = AdaptTarget::Match::LastDim;
  } else if (starts_with(d, "BatchNorm(")) {
    t.match = AdaptTarget::Match::Channels;
  } else if (starts_with(d, "Embedding(")) {
    t.needs_integers = true;
  }
  return t;
}

std::optional<AdaptTarget> adapt_target(const Node& node,
                                        const std::map<std::string, Component>& components) {
  const Literal* to = node.kwarg("to");
  const Literal* like = node.kwarg("like");
  const bool has_to = to != nullptr && to->kind != Literal::Kind::None;
  const bool has_like = like != nullptr && like->kind != Literal::Kind::None;
  if (has_to == has_like) {
    throw ShapeError(
        fmt::format("{}adapt needs exactly one of to=SHAPE and like=MODEL\n"
                    "  fix: adapt(x, to=[N, 512])   or   adapt(x, like=MODEL)",
                    node.loc.prefix()));
  }
  if (has_to) {
    AdaptTarget t;
    for (const auto& item : to->items) {
      if (item.kind == Literal::Kind::String) {
        t.shape.push_back(item.s == "?" ? any_dim() : Dim::symbol(item.s));
      } else if (item.kind == Literal::Kind::Int && (item.i > 0 || item.i == -1)) {
        t.shape.push_back(item.i == -1 ? any_dim() : Dim(item.i));
      } else {
        throw ShapeError(
            fmt::format("{}adapt: to={} has the size {}; sizes are positive numbers, dim names "
                        "like N, or -1 for any size",
                        node.loc.prefix(), to->str(), item.str()));
      }
    }
    if (t.shape.empty()) {
      throw ShapeError(node.loc.prefix() + "adapt: to=[] is empty\n  fix: adapt(x, to=[N, 512])");
    }
    return t;
  }
  auto it = components.find(like->s);
  if (it == components.end()) {
    std::string names;
    for (const auto& [name, c] : components) names += (names.empty() ? "" : ", ") + name;
    throw ShapeError(fmt::format("{}adapt: like={} names no model (models: {})", node.loc.prefix(),
                                 like->s, names.empty() ? "none" : names));
  }
  auto expected = expected_input(it->second, 0);
  if (!expected) return std::nullopt;
  return target_from_expectation(*expected, like->s);
}

}  // namespace stitch
