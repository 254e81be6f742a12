#pragma once
// Graph expressions (`linear(concat(a, b, dim=1), 5)`): a small hand-written
// recursive-descent parser that adds nodes to a Graph as it reads. The spec
// loader uses it for each `name = expression` of `graph:`.

#include <map>
#include <string>
#include <vector>

#include "stitch/graph.h"

namespace stitch {
namespace detail {

/// A name that a later statement of the spec's graph assigns. Knowing them
/// lets the parser say "used before it is assigned" (and spot cycles) instead
/// of "unknown name".
struct LaterAssignment {
  int line = 0;
  std::string text;  // the whole statement, to see whether it refers back
};

/// What names mean while parsing one expression.
struct ExpressionScope {
  /// Inputs and names assigned so far (aliases included).
  const std::map<std::string, Value>& values;
  /// Names assigned further down the graph list; may be null.
  const std::map<std::string, LaterAssignment>* later = nullptr;
};

/// `name = expression` after parsing: the expression's nodes are in the
/// graph, but `value` is not named yet (the caller decides: name or alias).
struct Statement {
  std::string name;
  SourceLoc name_loc;
  Value value;
};

/// Parses `name = expression`, adding the expression's nodes to `graph`.
/// `loc` is where `text` starts in the spec. Throws SpecError.
Statement parse_statement(Graph& graph, const std::string& text, const ExpressionScope& scope,
                          const SourceLoc& loc);

/// The name a statement assigns ("img" in "img = flatten(x)"), or "" when
/// the text does not start with `identifier =`.
std::string statement_target(const std::string& text);

/// The identifiers an expression mentions; empty when it does not tokenize.
std::vector<std::string> identifiers_in(const std::string& text);

/// The deepest nesting of parentheses, calls and lists the parser accepts;
/// deeper input is an error, never a stack overflow.
constexpr int kMaxExpressionDepth = 200;

}  // namespace detail
}  // namespace stitch
