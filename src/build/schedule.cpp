#include "build/schedule.h"

#include <algorithm>

namespace stitch {

namespace {

/// The nodes whose values node `id` uses (the nodes they are the same as).
std::vector<int> value_args(const Graph& graph, const Simplification& simple, int id) {
  std::vector<int> ids;
  for (const auto& a : graph.nodes()[id].args) {
    if (const auto* v = std::get_if<Value>(&a)) ids.push_back(simple.same_as[v->id()]);
  }
  return ids;
}

/// needs[i][j]: node i uses node j's value, directly or through others.
std::vector<std::vector<bool>> dependencies(const Graph& graph, const Simplification& simple) {
  const size_t n = graph.nodes().size();
  std::vector<std::vector<bool>> needs(n, std::vector<bool>(n, false));
  for (size_t i = 0; i < n; ++i) {
    for (int arg : value_args(graph, simple, static_cast<int>(i))) {
      needs[i][arg] = true;
      for (size_t j = 0; j < n; ++j) {
        if (needs[arg][j]) needs[i][j] = true;
      }
    }
  }
  return needs;
}

class Scheduler {
 public:
  Scheduler(const Graph& graph, const Simplification& simple, const ModelWeights& weight)
      : g_(graph),
        simple_(simple),
        weight_(weight),
        needs_(dependencies(graph, simple)),
        state_(graph.nodes().size(), State::Pending) {
    for (size_t id = 0; id < g_.nodes().size(); ++id) {
      if (!simple.runs[id]) state_[id] = State::Done;  // inputs, and what nothing needs
      if (simple.runs[id] && g_.nodes()[id].kind == Node::Kind::Call) {
        calls_.push_back(static_cast<int>(id));
      }
    }
  }

  std::vector<Step> run() {
    while (true) {
      fork_ready_calls();
      const int next = next_to_run();
      if (next < 0) break;
      for (int arg : value_args(g_, simple_, next)) wait_for(arg);
      steps_.push_back({Step::Kind::Run, next});
      state_[next] = State::Done;
    }
    // Outputs, or calls nothing uses: waited for before forward returns.
    for (size_t id = 0; id < state_.size(); ++id) wait_for(static_cast<int>(id));
    return steps_;
  }

 private:
  enum class State { Pending, Forked, Done };

  bool independent(int a, int b) const { return !needs_[a][b] && !needs_[b][a]; }

  bool ready(int id) const {
    const auto args = value_args(g_, simple_, id);
    return std::all_of(args.begin(), args.end(),
                       [&](int arg) { return state_[arg] == State::Done; });
  }

  /// Forks each ready call that has a pending independent call at least as
  /// heavy (on a tie, a later one): the heaviest of a group stays inline.
  void fork_ready_calls() {
    for (int call : calls_) {
      if (state_[call] != State::Pending || !ready(call)) continue;
      const bool heavier_pending = std::any_of(calls_.begin(), calls_.end(), [&](int other) {
        return other != call && state_[other] == State::Pending && independent(call, other) &&
               std::make_pair(weight_of(other), other) > std::make_pair(weight_of(call), call);
      });
      if (!heavier_pending) continue;
      steps_.push_back({Step::Kind::Fork, call});
      state_[call] = State::Forked;
    }
  }

  int64_t weight_of(int call) const {
    const auto found = weight_.find(g_.nodes()[call].op);
    return found == weight_.end() ? 0 : found->second;
  }

  /// The first pending node that needs no wait; else the first pending one.
  int next_to_run() const {
    int first = -1;
    for (size_t id = 0; id < state_.size(); ++id) {
      if (state_[id] != State::Pending) continue;
      if (ready(static_cast<int>(id))) return static_cast<int>(id);
      if (first < 0) first = static_cast<int>(id);
    }
    return first;
  }

  void wait_for(int id) {
    if (state_[id] != State::Forked) return;
    steps_.push_back({Step::Kind::Wait, id});
    state_[id] = State::Done;
  }

  const Graph& g_;
  const Simplification& simple_;
  const ModelWeights& weight_;
  std::vector<std::vector<bool>> needs_;
  std::vector<State> state_;
  std::vector<int> calls_;
  std::vector<Step> steps_;
};

}  // namespace

std::vector<Step> schedule(const Graph& graph, const Simplification& simple, bool concurrent,
                           const ModelWeights& weight) {
  if (concurrent) return Scheduler(graph, simple, weight).run();
  std::vector<Step> steps;
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    if (simple.runs[id]) steps.push_back({Step::Kind::Run, static_cast<int>(id)});
  }
  return steps;
}

}  // namespace stitch
