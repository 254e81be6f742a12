#pragma once
// The checked graph: loaded components and every node's type. What `check`
// reports and what `build` generates code from (build/builder.h).

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "check/simplify.h"
#include "load/component.h"
#include "stitch/check.h"
#include "stitch/graph.h"

namespace stitch {

struct Analysis {
  const Graph* graph = nullptr;
  std::map<std::string, Component> components;  // by model name
  std::vector<ValueType> types;                 // by node id
  std::vector<std::string> notes;               // by node id
  std::vector<std::string> untrained;           // learned adapters: a report note each
  Simplification simple;                        // what build runs
};

namespace detail {
/// What a CheckReport carries to build: the analysis, until a build takes it.
struct CheckedModels {
  std::mutex mutex;
  std::optional<Analysis> analysis;
};
}  // namespace detail

/// Loads components (those not `loaded` already) and infers every node's
/// type. Throws stitch::Error.
Analysis analyze(const Graph& graph, std::map<std::string, Component> loaded = {});

/// check's report of an analysis, which it carries for build.
CheckReport report_of(const Graph& graph, Analysis analysis);

/// The analysis `report` carries, taken out of it, when it is `graph`'s as
/// the graph is now; nullopt when a build took it already or it is not.
std::optional<Analysis> take_analysis(const CheckReport& report, const Graph& graph);

/// One `check` row per node of an analyzed graph.
std::vector<NodeReport> node_reports(const Graph& graph, const Analysis& analysis);

/// The type of a value computed by a run, with its concrete sizes.
ValueType value_type(const c10::IValue& value);

}  // namespace stitch
