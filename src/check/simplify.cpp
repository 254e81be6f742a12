#include "check/simplify.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

#include "ops/expression_text.h"
#include "ops/registry.h"

namespace stitch {

namespace {

/// Whether two nodes with the same key compute the same value.
bool repeatable(const Node& n) {
  if (n.kind != Node::Kind::Op) return n.kind != Node::Kind::Input;
  const OpDef* def = find_op(n.op);
  return def != nullptr && def->lower != nullptr && !def->random;
}

/// A literal as key text: strings by length, so that no two literals share one.
std::string literal_key(const Literal& l) {
  switch (l.kind) {
    case Literal::Kind::String:
      return fmt::format("s{}:{}", l.s.size(), l.s);
    case Literal::Kind::List: {
      std::string key = fmt::format("l{}[", l.items.size());
      for (const auto& item : l.items) key += literal_key(item) + ",";
      return key + "]";
    }
    case Literal::Kind::Float:
      return fmt::format("f{}", l.f);  // shortest text that reads back the same double
    default:
      return fmt::format("{}:{}", static_cast<int>(l.kind), l.str());
  }
}

/// The node as text with its arguments replaced by the nodes they are the same as.
std::string key_of(const Node& n, const std::vector<int>& same_as) {
  std::string key = fmt::format("{}|{}", static_cast<int>(n.kind), n.op);
  for (const auto& a : n.args) {
    if (const auto* v = std::get_if<Value>(&a)) {
      key += fmt::format("|%{}", same_as[v->id()]);
    } else {
      key += "|" + literal_key(std::get<Literal>(a));
    }
  }
  for (const auto& [name, value] : n.kwargs) {
    key += fmt::format("|{}={}", name, literal_key(value));
  }
  return key;
}

std::vector<int> value_args(const Node& n) {
  std::vector<int> ids;
  for (const auto& a : n.args) {
    if (const auto* v = std::get_if<Value>(&a)) ids.push_back(v->id());
  }
  return ids;
}

/// "z = head(x)", or the expression alone for an unnamed value.
std::string entry_text(const Graph& graph, int id) {
  const Node& n = graph.nodes()[id];
  const std::string expression = node_expression(graph, id);
  return n.name.empty() ? expression : fmt::format("{} = {}", n.name, expression);
}

/// The spec entry a node is written in: its own name, or that of the next
/// named node (the nodes of an expression come just before its entry's).
std::string entry_of(const Graph& graph, int id) {
  for (size_t later = id; later < graph.nodes().size(); ++later) {
    const Node& n = graph.nodes()[later];
    if (!n.name.empty() && n.kind != Node::Kind::Input) return n.name;
  }
  return node_expression(graph, id);
}

}  // namespace

Simplification simplify(const Graph& graph) {
  const auto& nodes = graph.nodes();
  const size_t count = nodes.size();
  Simplification s;
  s.same_as.resize(count);
  std::map<std::string, int> first_with_key;
  for (size_t id = 0; id < count; ++id) {
    s.same_as[id] = static_cast<int>(id);
    if (!repeatable(nodes[id])) continue;
    const auto [it, fresh] = first_with_key.emplace(key_of(nodes[id], s.same_as), id);
    if (!fresh) s.same_as[id] = it->second;
  }

  // What the outputs need, through the graph as written; a needed repeat
  // needs the node it is the same as, computed in its place.
  std::vector<bool> needed(count, false);
  std::vector<bool> is_output(count, false);
  for (const auto& [name, v] : graph.outputs()) needed[v.id()] = is_output[v.id()] = true;
  for (size_t id = count; id-- > 0;) {
    if (!needed[id]) continue;
    for (int arg : value_args(nodes[id])) needed[arg] = true;
  }
  s.runs.assign(count, false);
  for (size_t id = 0; id < count; ++id) {
    if (needed[id] && nodes[id].kind != Node::Kind::Input) s.runs[s.same_as[id]] = true;
  }

  // Notes: an unneeded entry that no other unneeded one uses (the root of
  // what is left out), an unused input, and each repeated expression where
  // it is written (not inside another repeat).
  // Left out: what no output needs, unless a needed repeat of it is
  // computed as it (a = enc(x) unused, b = enc(x) an output).
  auto left_out = [&](size_t id) { return !needed[id] && !s.runs[id]; };
  std::vector<bool> used_by_unneeded(count, false), used_by_original(count, false);
  for (size_t id = 0; id < count; ++id) {
    for (int arg : value_args(nodes[id])) {
      if (left_out(id)) used_by_unneeded[arg] = true;
      if (needed[id] && s.same_as[id] == static_cast<int>(id)) used_by_original[arg] = true;
    }
  }
  std::map<int, std::vector<std::string>> written_in;  // by the node computed once
  for (size_t id = 0; id < count; ++id) {
    const int i = static_cast<int>(id);
    if (nodes[id].kind == Node::Kind::Input) {
      if (!needed[id]) {
        s.notes.push_back(fmt::format("input '{}' is used by no output", nodes[id].name));
      }
    } else if (!needed[id]) {
      if (!left_out(id) || used_by_unneeded[id]) continue;
      s.notes.push_back(fmt::format(
          "{} is used by no output: left out of the build (list it under outputs: to keep it)",
          entry_text(graph, i)));
    } else if (s.same_as[id] != i &&
               (!nodes[id].name.empty() || used_by_original[id] || is_output[id])) {
      auto& entries = written_in[s.same_as[id]];
      if (entries.empty()) entries.push_back(entry_of(graph, s.same_as[id]));
      entries.push_back(entry_of(graph, i));
    }
  }
  for (const auto& [once, entries] : written_in) {
    s.notes.push_back(fmt::format("{} is written {} times (in {}): computed once",
                                  node_expression(graph, once), entries.size(),
                                  fmt::join(entries, ", ")));
  }
  return s;
}

}  // namespace stitch
