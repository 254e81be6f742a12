#pragma once
// What an adapt node must produce: its to= shape, or what the model of
// like=MODEL expects (read from the model's first layer).

#include <map>
#include <optional>
#include <string>

#include "load/component.h"
#include "ops/adapt.h"

namespace stitch {

/// What a model's first layer expects, as an adapter target (N stays N,
/// other unknown sizes match anything).
AdaptTarget target_from_expectation(const Expectation& e, const std::string& model);

/// The target of an adapt node: `to=` as written, or what model `like=`
/// expects. nullopt when the model's expectation cannot be read from its
/// first layer. Throws ShapeError for a malformed call.
std::optional<AdaptTarget> adapt_target(const Node& node,
                                        const std::map<std::string, Component>& components);

}  // namespace stitch
