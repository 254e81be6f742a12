#include "ops/expression_text.h"

#include <fmt/format.h>

#include <cmath>

#include "ops/registry.h"

namespace stitch {

namespace {

/// Where an operand is written, for deciding on parentheses.
enum class Slot { Plain, Left, Right, Postfix };

bool is_infix(const Node& n) {
  return n.kind == Node::Kind::Op && n.args.size() == 2 &&
         (n.op == "add" || n.op == "sub" || n.op == "mul");
}

/// `*` binds tighter than `+` and `-`, and all three associate to the left.
bool needs_parens(const Node& child, const Node& parent, Slot slot) {
  switch (slot) {
    case Slot::Plain:
      return false;
    case Slot::Postfix:
      return true;
    case Slot::Left:
      return parent.op == "mul" && child.op != "mul";
    case Slot::Right:
      return parent.op == "mul" || child.op != "mul";
  }
  return true;
}

bool is_default(const ParamDef& p, const Literal& value) {
  return p.fallback && p.fallback->kind == value.kind && p.fallback->str() == value.str();
}

class Printer {
 public:
  Printer(const Graph& graph, const NodeNaming& naming) : graph_(graph), naming_(naming) {}

  std::string expression(const Node& n) const {
    switch (n.kind) {
      case Node::Kind::Input:
        return n.name;
      case Node::Kind::Index:
        return operand(n.args[0], n, Slot::Postfix) + "[" + operand(n.args[1], n) + "]";
      case Node::Kind::Attr:
        return operand(n.args[0], n, Slot::Postfix) + "." + n.op;
      case Node::Kind::Call:
        return n.op + "(" + joined_args(n) + ")";
      case Node::Kind::Op:
        break;
    }
    if (is_infix(n)) {
      const char* sym = n.op == "add" ? " + " : n.op == "sub" ? " - " : " * ";
      return operand(n.args[0], n, Slot::Left) + sym + operand(n.args[1], n, Slot::Right);
    }
    return n.op + "(" + joined_args(n) + op_kwargs(n) + ")";
  }

 private:
  std::string operand(const Arg& a, const Node& parent, Slot slot = Slot::Plain) const {
    if (const auto* lit = std::get_if<Literal>(&a)) return format_literal(*lit);
    const int id = std::get<Value>(a).id();
    const Node& n = graph_.nodes().at(id);
    std::string name = naming_(id);
    if (!name.empty()) return name;
    const bool parens = is_infix(n) && needs_parens(n, parent, slot);
    return parens ? "(" + expression(n) + ")" : expression(n);
  }

  std::string joined_args(const Node& n) const {
    std::string out;
    for (size_t k = 0; k < n.args.size(); ++k) out += (k ? ", " : "") + operand(n.args[k], n);
    return out;
  }

  /// Required parameters positionally, as a user writes them; optional ones
  /// by keyword, and only when not the default.
  static std::string op_kwargs(const Node& n) {
    const OpDef* op = find_op(n.op);
    std::string out;
    bool positional = true;
    for (const auto& [key, value] : n.kwargs) {
      const ParamDef* p = op != nullptr ? op->signature.param(key) : nullptr;
      positional = positional && p != nullptr && !p->fallback;
      if (positional) {
        out += ", " + format_literal(value);
      } else if (p == nullptr || !is_default(*p, value) || key == "dim") {
        // NOTE: `dim` is written even when it is the default: concat(a, b, dim=1)
        // reads better than relying on the reader to know the default.
        out += fmt::format(", {}={}", key, format_literal(value));
      }
    }
    return out;
  }

  const Graph& graph_;
  const NodeNaming& naming_;
};

}  // namespace

std::string expression_text(const Graph& graph, int id, const NodeNaming& naming) {
  return Printer(graph, naming).expression(graph.nodes().at(id));
}

std::string node_expression(const Graph& graph, int id) {
  return expression_text(graph, id, [&](int v) { return graph.nodes()[v].name; });
}

std::string value_text(const Graph& graph, Value value) {
  const Node& n = graph.node(value);
  return n.name.empty() ? node_expression(graph, value.id()) : n.name;
}

bool is_keyword_literal(const std::string& word) {
  return word == "true" || word == "false" || word == "none" || word == "True" || word == "False" ||
         word == "None";
}

std::string format_literal(const Literal& lit) {
  switch (lit.kind) {
    case Literal::Kind::Float: {
      if (!std::isfinite(lit.f)) {
        return lit.str();  // NOTE: no spelling for inf/nan; the spec will not parse
      }
      // Shortest text that reads back as the same double.
      std::string s = fmt::format("{}", lit.f);
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";
      return s;
    }
    case Literal::Kind::String: {
      std::string out = "\"";
      for (char c : lit.s) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') {
          out += "\\n";
          continue;
        }
        out += c;
      }
      return out + "\"";
    }
    case Literal::Kind::List: {
      std::string out = "[";
      for (size_t k = 0; k < lit.items.size(); ++k) {
        const Literal& item = lit.items[k];
        out += k ? ", " : "";
        // Names in lists read back as strings: write [N, 3] rather than ["N", 3].
        const bool bare = item.kind == Literal::Kind::String && is_identifier(item.s) &&
                          !is_keyword_literal(item.s);
        out += bare ? item.s : format_literal(item);
      }
      return out + "]";
    }
    default:
      return lit.str();
  }
}

}  // namespace stitch
