#include "core/graph_text.h"

#include "core/op_signatures.h"

namespace stitch {

namespace {
std::string arg_text(const Graph& graph, const Arg& arg) {
  if (const auto* v = std::get_if<Value>(&arg)) return value_text(graph, *v);
  return std::get<Literal>(arg).str();
}

bool is_default(const OpSignature* sig, const std::string& key, const Literal& v) {
  if (sig == nullptr) return false;
  for (const auto& p : sig->params) {
    if (p.name == key && p.fallback) return p.fallback->str() == v.str();
  }
  return false;
}
}  // namespace

std::string value_text(const Graph& graph, Value value) {
  const Node& n = graph.node(value);
  return n.name.empty() ? node_expression(graph, value.id()) : n.name;
}

std::string node_expression(const Graph& graph, int id) {
  const Node& n = graph.nodes().at(id);
  switch (n.kind) {
    case Node::Kind::Input: return n.name;
    case Node::Kind::Index:
      return arg_text(graph, n.args[0]) + "[" + arg_text(graph, n.args[1]) + "]";
    case Node::Kind::Attr: return arg_text(graph, n.args[0]) + "." + n.op;
    case Node::Kind::Call:
    case Node::Kind::Op: break;
  }
  static const std::map<std::string, std::string> kInfix = {
      {"add", " + "}, {"sub", " - "}, {"mul", " * "}};
  auto infix = kInfix.find(n.op);
  if (n.kind == Node::Kind::Op && infix != kInfix.end() && n.args.size() == 2 &&
      (n.op != "add" && n.op != "mul" ? true
                                      : std::holds_alternative<Literal>(n.args[0]) ||
                                            std::holds_alternative<Literal>(n.args[1]))) {
    return arg_text(graph, n.args[0]) + infix->second + arg_text(graph, n.args[1]);
  }
  const OpSignature* sig = n.kind == Node::Kind::Op ? find_op(n.op) : nullptr;
  std::string out = n.op + "(";
  bool first = true;
  for (const auto& a : n.args) {
    out += (first ? "" : ", ") + arg_text(graph, a);
    first = false;
  }
  for (const auto& [key, v] : n.kwargs) {
    if (is_default(sig, key, v)) continue;
    out += (first ? "" : ", ") + key + "=" + v.str();
    first = false;
  }
  return out + ")";
}

}  // namespace stitch
