// The two Graph methods that need the op table: op() binds a call against
// an op's signature, and add_model() refuses a model named like an op (the
// spec could not tell `relu(x)` the op from `relu(x)` the model).

#include <fmt/format.h>

#include "core/artifact_names.h"
#include "core/identifiers.h"
#include "core/nearest_name.h"
#include "ops/registry.h"
#include "stitch/graph.h"

namespace stitch {

void Graph::add_model(ModelSpec spec) {
  check_identifier("model", spec.name, spec.loc);
  if (is_module_attribute(spec.name)) {
    throw SpecError(fmt::format(
        "{}model name '{}' is reserved for the combined module's own attributes (training, "
        "forward, {}, {}, and names starting with _); choose another name",
        spec.loc.prefix(), spec.name, kSpecAttr, kManifestAttr));
  }
  if (find_op(spec.name) != nullptr) {
    throw SpecError(fmt::format("{}model name '{}' is also a built-in op; choose another name",
                                spec.loc.prefix(), spec.name));
  }
  auto it = models_.find(spec.name);
  if (it != models_.end()) {
    const ModelSpec& old = it->second;
    if (old.file == spec.file && old.cut == spec.cut && old.after == spec.after &&
        old.taps == spec.taps && old.method == spec.method && old.merge == spec.merge &&
        old.merge_options.str() == spec.merge_options.str()) {
      return;  // the same model used again
    }
    throw SpecError(fmt::format("{}model '{}' is declared twice", spec.loc.prefix(), spec.name));
  }
  model_order_.push_back(spec.name);
  models_.emplace(spec.name, std::move(spec));
}

Value Graph::op(const std::string& op, std::vector<Arg> args, Kwargs kwargs, SourceLoc loc) {
  const OpDef* def = find_op(op);
  if (def == nullptr) {
    auto near = nearest_name(op, op_names());
    std::vector<std::string> models(model_order_);
    auto near_model = nearest_name(op, models);
    std::string hint;
    if (!near.empty()) {
      hint = fmt::format("\n  fix: did you mean '{}'?", near);
    } else if (!near_model.empty()) {
      hint = fmt::format("\n  fix: did you mean the model '{}'?", near_model);
    }
    throw SpecError(fmt::format("{}unknown op or model '{}'{}", loc.prefix(), op, hint));
  }
  bind_op_args(def->signature, args, kwargs, loc);
  Node n;
  n.kind = Node::Kind::Op;
  n.op = op;
  n.args = std::move(args);
  n.kwargs = std::move(kwargs);
  n.loc = std::move(loc);
  return add(std::move(n));
}

}  // namespace stitch
