#pragma once
// Graph nodes written back as spec expressions: the one printer behind
// messages, `check`'s rows and the spec writer. Required op parameters go
// positionally (`linear(x, 5)`), optional ones by keyword when not the
// default, and `+ - *` get the parentheses their precedence needs.

#include <functional>
#include <string>

#include "stitch/graph.h"

namespace stitch {

/// The name node `id` is written by where it is used, or "" to write its
/// expression there instead.
using NodeNaming = std::function<std::string(int id)>;

/// The expression computing node `id`, its operands by name or inline as
/// `naming` says.
std::string expression_text(const Graph& graph, int id, const NodeNaming& naming);

/// The value's spec name if it has one, else its expression (operands the
/// same way).
std::string value_text(const Graph& graph, Value value);
/// The expression computing a node, named operands by name.
std::string node_expression(const Graph& graph, int id);

/// `lit` written so that the spec reader reads it back: 3, 0.5, "a\"b", [N, 3].
std::string format_literal(const Literal& lit);
/// true, false, none and Python's spellings of them.
bool is_keyword_literal(const std::string& word);

}  // namespace stitch
