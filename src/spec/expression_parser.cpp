#include "spec/expression_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "core/nearest_name.h"
#include "ops/expression_text.h"
#include "ops/registry.h"
#include "stitch/spec.h"

namespace stitch {
namespace detail {

namespace {

// ---- Tokens ------------------------------------------------------------------

enum class Tok { Ident, Int, Float, String, Punct, End };

struct Token {
  Tok kind = Tok::End;
  size_t pos = 0;    // offset in the text
  size_t len = 0;    // length in the text
  std::string text;  // identifier, punctuation, or a string's decoded value
  int64_t i = 0;
  double f = 0.0;

  bool is(char c) const { return kind == Tok::Punct && text[0] == c; }
  bool is_ident(const char* word) const { return kind == Tok::Ident && text == word; }
};

bool is_ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}
bool is_digit(char c) {
  return std::isdigit(static_cast<unsigned char>(c));
}

// Turns byte offsets into spec line:column. Offsets count from the start of
// the expression text, which starts at `base`.
class Locator {
 public:
  Locator(const std::string& text, SourceLoc base) : base_(std::move(base)) {
    for (size_t k = 0; k < text.size(); ++k) {
      if (text[k] == '\n') newlines_.push_back(k);
    }
  }

  SourceLoc at(size_t pos) const {
    SourceLoc loc = base_;
    if (!loc.known()) {
      return loc;
    }
    // Binary search keeps long multi-line expressions linear overall.
    auto it = std::lower_bound(newlines_.begin(), newlines_.end(), pos);
    size_t line_index = static_cast<size_t>(it - newlines_.begin());
    if (line_index == 0) {
      loc.column += static_cast<int>(pos);
    } else {
      loc.line += static_cast<int>(line_index);
      loc.column = static_cast<int>(pos - newlines_[line_index - 1]);
    }
    return loc;
  }

 private:
  SourceLoc base_;
  std::vector<size_t> newlines_;
};

[[noreturn]] void fail_at(const SourceLoc& loc, const std::string& msg) {
  throw SpecError(loc.prefix() + msg);
}

class Tokenizer {
 public:
  Tokenizer(const std::string& text, const Locator& locator) : text_(text), locator_(locator) {}

  std::vector<Token> run() {
    std::vector<Token> tokens;
    while (true) {
      skip_space();
      if (pos_ >= text_.size()) break;
      tokens.push_back(next());
    }
    Token end;
    end.kind = Tok::End;
    end.pos = text_.size();
    tokens.push_back(end);
    return tokens;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }

  Token next() {
    const char c = text_[pos_];
    if (is_ident_start(c)) return identifier();
    if (is_digit(c) || (c == '.' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1]))) {
      return number();
    }
    if (c == '"' || c == '\'') return string();
    if (std::string("()[],=.+-*").find(c) != std::string::npos) {
      Token t;
      t.kind = Tok::Punct;
      t.pos = pos_++;
      t.len = 1;
      t.text = std::string(1, c);
      return t;
    }
    std::string shown = std::isprint(static_cast<unsigned char>(c))
                            ? std::string(1, c)
                            : fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    std::string hint;
    if (c == '/') hint = " (only +, - and * are supported)";
    if (c == ':' || c == '{') hint = " (graph entries are 'name = expression')";
    fail_at(locator_.at(pos_), fmt::format("unexpected character '{}'{}", shown, hint));
  }

  Token identifier() {
    Token t;
    t.kind = Tok::Ident;
    t.pos = pos_;
    while (pos_ < text_.size() && is_ident_char(text_[pos_])) ++pos_;
    t.len = pos_ - t.pos;
    t.text = text_.substr(t.pos, t.len);
    return t;
  }

  Token number() {
    Token t;
    t.pos = pos_;
    bool is_float = false;
    auto digits = [&] {
      while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    };
    digits();
    if (pos_ < text_.size() && text_[pos_] == '.') {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      size_t save = pos_++;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (pos_ < text_.size() && is_digit(text_[pos_])) {
        is_float = true;
        digits();
      } else {
        pos_ = save;  // "2e" is a number then a name; the parser will object
      }
    }
    t.len = pos_ - t.pos;
    const std::string spelled = text_.substr(t.pos, t.len);
    if (pos_ < text_.size() && is_ident_char(text_[pos_])) {
      fail_at(locator_.at(t.pos),
              fmt::format("'{}' is not a number or a name", spelled + text_[pos_]));
    }
    errno = 0;
    if (is_float) {
      t.kind = Tok::Float;
      t.f = std::strtod(spelled.c_str(), nullptr);
      if (errno == ERANGE && std::isinf(t.f)) {
        fail_at(locator_.at(t.pos), fmt::format("number '{}' is too large", spelled));
      }
    } else {
      t.kind = Tok::Int;
      t.i = std::strtoll(spelled.c_str(), nullptr, 10);
      if (errno == ERANGE) {
        fail_at(locator_.at(t.pos), fmt::format("integer '{}' does not fit in 64 bits", spelled));
      }
    }
    t.text = spelled;
    return t;
  }

  Token string() {
    Token t;
    t.kind = Tok::String;
    t.pos = pos_;
    const char quote = text_[pos_++];
    while (true) {
      if (pos_ >= text_.size()) {
        fail_at(locator_.at(t.pos), fmt::format("string starting here has no closing {}", quote));
      }
      char c = text_[pos_++];
      if (c == quote) break;
      if (c == '\\' && pos_ < text_.size()) {
        char e = text_[pos_++];
        switch (e) {
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          default:
            c = e;  // \\, \", \' and anything else: the character itself
        }
      }
      t.text += c;
    }
    t.len = pos_ - t.pos;
    return t;
  }

  const std::string& text_;
  const Locator& locator_;
  size_t pos_ = 0;
};

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::End:
      return "the end of the expression";
    case Tok::String:
      return "a string";
    default: {
      std::string s = t.text.size() > 24 ? t.text.substr(0, 24) + "..." : t.text;
      return "'" + s + "'";
    }
  }
}

Literal keyword_literal(const std::string& word) {
  if (word == "true" || word == "True") return Literal(true);
  if (word == "false" || word == "False") return Literal(false);
  return Literal();
}

std::vector<std::string> keys_of(const std::map<std::string, Value>& values) {
  std::vector<std::string> keys;
  keys.reserve(values.size());
  for (const auto& [name, v] : values) keys.push_back(name);
  return keys;
}

// ---- Parser ------------------------------------------------------------------

// Recursive descent over the tokens, one method per grammar rule:
//   statement := IDENT '=' expr END
//   expr      := term (('+' | '-') term)*
//   term      := unary ('*' unary)*
//   unary     := '-' unary | postfix
//   postfix   := primary ('[' literal ']' | '.' IDENT)*
//   primary   := NUMBER | STRING | true | false | none | list | '(' expr ')'
//              | IDENT '(' args ')' | IDENT
// Values are Args: a graph Value, or a Literal (constants fold as they go).
class Parser {
 public:
  Parser(Graph& graph, const std::string& text, const ExpressionScope& scope, const SourceLoc& base)
      : graph_(graph), scope_(scope), locator_(text, base) {
    tokens_ = Tokenizer(text, locator_).run();
  }

  Statement statement() {
    const Token& name = peek();
    if (name.kind != Tok::Ident || !peek(1).is('=')) {
      if (name.kind == Tok::Ident) {
        fail(peek(1), fmt::format("expected '=' after '{}', got {} (a graph entry is "
                                  "'name = expression')",
                                  name.text, describe(peek(1))));
      }
      fail(name, fmt::format("expected a name to assign, got {} (a graph entry is "
                             "'name = expression')",
                             describe(name)));
    }
    Statement s;
    s.name = name.text;
    s.name_loc = loc(name);
    current_name_ = name.text;
    pos_ += 2;
    const Token& start = peek();
    if (start.kind == Tok::End) {
      fail(start, fmt::format("expected an expression after '{} ='", s.name));
    }
    s.value = tensor(expr(), "'" + s.name + "'", start);
    expect_end();
    return s;
  }

  Value expression() {
    const Token& start = peek();
    if (start.kind == Tok::End) {
      fail(start, "expected an expression, got nothing");
    }
    Value v = tensor(expr(), "the expression", start);
    expect_end();
    return v;
  }

 private:
  // Counts nesting; deeper than kMaxExpressionDepth is an error, so a
  // pathological spec cannot overflow the stack.
  class DepthGuard {
   public:
    DepthGuard(Parser& p, const Token& at) : p_(p) {
      if (++p_.depth_ > kMaxExpressionDepth) {
        p_.fail(at, fmt::format("expression is nested too deeply (more than {} levels)",
                                kMaxExpressionDepth));
      }
    }
    ~DepthGuard() { --p_.depth_; }

   private:
    Parser& p_;
  };

  // -- token helpers

  const Token& peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& take() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool accept(char c) {
    if (peek().is(c)) {
      ++pos_;
      return true;
    }
    return false;
  }
  SourceLoc loc(const Token& t) const { return locator_.at(t.pos); }
  [[noreturn]] void fail(const Token& at, const std::string& msg) const { fail_at(loc(at), msg); }
  void expect_end() {
    if (peek().kind != Tok::End) {
      fail(peek(), fmt::format("unexpected {} after the expression", describe(peek())));
    }
  }

  // -- values

  Value tensor(const Arg& a, const std::string& what, const Token& start) const {
    if (const auto* v = std::get_if<Value>(&a)) {
      return *v;
    }
    fail(start, fmt::format("{} must compute a tensor, not the constant {}", what,
                            std::get<Literal>(a).str()));
  }

  Arg expr() {
    DepthGuard guard(*this, peek());
    const Token& start = peek();
    Arg left = term();
    while (peek().is('+') || peek().is('-')) {
      const char op = take().text[0];
      Arg right = term();
      left = arithmetic(op, std::move(left), std::move(right), start);
    }
    return left;
  }

  Arg term() {
    const Token& start = peek();
    Arg left = unary();
    while (peek().is('*')) {
      take();
      Arg right = unary();
      left = arithmetic('*', std::move(left), std::move(right), start);
    }
    return left;
  }

  Arg unary() {
    if (!peek().is('-')) {
      return postfix();
    }
    DepthGuard guard(*this, peek());
    const Token& minus = take();
    Arg operand = unary();
    if (auto* lit = std::get_if<Literal>(&operand)) {
      if (lit->kind == Literal::Kind::Int) {
        lit->i = -lit->i;
      } else if (lit->kind == Literal::Kind::Float) {
        lit->f = -lit->f;
      } else {
        fail(minus, fmt::format("cannot negate {}", lit->str()));
      }
      return operand;
    }
    return graph_.op("mul", {operand, Literal(int64_t{-1})}, {}, loc(minus));
  }

  Arg postfix() {
    const Token& start = peek();
    Arg value = primary();
    while (true) {
      if (peek().is('[')) {
        const Token& open = take();
        Value of = indexable(value, open, "index");
        Literal key = literal(/*names_as_strings=*/false);
        if (!accept(']')) {
          fail(peek(), fmt::format("expected ']' to close the index opened at column {}, "
                                   "got {}",
                                   loc(open).column, describe(peek())));
        }
        value = graph_.index(of, std::move(key), loc(start));
      } else if (peek().is('.')) {
        const Token& dot = take();
        Value of = indexable(value, dot, "take an attribute of");
        const Token& name = take();
        if (name.kind != Tok::Ident) {
          fail(name, fmt::format("expected an attribute name after '.', got {}", describe(name)));
        }
        value = graph_.attr(of, name.text, loc(start));
      } else {
        return value;
      }
    }
  }

  Value indexable(const Arg& a, const Token& at, const char* verb) const {
    if (const auto* v = std::get_if<Value>(&a)) {
      return *v;
    }
    fail(at, fmt::format("cannot {} the constant {}", verb, std::get<Literal>(a).str()));
  }

  /// A number, a string or true/false/none: the literal it is, taken; or
  /// nullopt, the token left where it is.
  std::optional<Literal> take_scalar_literal() {
    const Token& t = peek();
    std::optional<Literal> lit;
    if (t.kind == Tok::Int) {
      lit = Literal(t.i);
    } else if (t.kind == Tok::Float) {
      lit = Literal(t.f);
    } else if (t.kind == Tok::String) {
      lit = Literal(t.text);
    } else if (t.kind == Tok::Ident && is_keyword_literal(t.text)) {
      lit = keyword_literal(t.text);
    }
    if (lit) take();
    return lit;
  }

  Arg primary() {
    if (auto lit = take_scalar_literal()) return *std::move(lit);
    const Token& t = peek();
    switch (t.kind) {
      case Tok::Ident:
        if (peek(1).is('(')) {
          return call();
        }
        take();
        return name_value(t);
      case Tok::Punct:
        if (t.is('(')) {
          take();
          Arg inner = expr();
          if (!accept(')')) {
            fail(peek(), fmt::format("expected ')' to close the '(' at column {}, got {}",
                                     loc(t).column, describe(peek())));
          }
          return inner;
        }
        if (t.is('[')) {
          return literal(/*names_as_strings=*/true);
        }
        break;
      default:  // the end (numbers and strings were taken above)
        break;
    }
    fail(t, fmt::format("expected a value, got {}", describe(t)));
  }

  // A name used as a value: an input or an assigned name. Everything else is
  // an error that says what the name is instead.
  Arg name_value(const Token& t) {
    auto it = scope_.values.find(t.text);
    if (it != scope_.values.end()) {
      return it->second;
    }
    if (graph_.models().count(t.text)) {
      fail(t, fmt::format("'{}' is a model; call it: {}(x)", t.text, t.text));
    }
    if (find_op(t.text) != nullptr) {
      fail(t, fmt::format("'{}' is an op; call it: {}(x)", t.text, t.text));
    }
    if (t.text == current_name_) {
      fail(t, fmt::format("'{}' is used in its own definition (a cycle)", t.text));
    }
    if (scope_.later != nullptr) {
      auto later = scope_.later->find(t.text);
      if (later != scope_.later->end()) {
        std::string msg = fmt::format("'{}' is used before it is assigned at line {}", t.text,
                                      later->second.line);
        auto ids = identifiers_in(later->second.text);
        if (!current_name_.empty() &&
            std::find(ids.begin(), ids.end(), current_name_) != ids.end()) {
          msg += fmt::format("; its expression uses '{}', so the two form a cycle", current_name_);
        }
        fail(t, msg);
      }
    }
    // A keyword argument is a constant: the name is a misspelt model (like=)
    // or a string without quotes, never a value.
    std::vector<std::string> candidates = graph_.model_order();
    if (!in_keyword_) {
      for (auto& name : keys_of(scope_.values)) candidates.push_back(std::move(name));
    }
    throw SpecError::unknown_name(
        loc(t), "name", t.text, candidates,
        in_keyword_ ? fmt::format("\n  fix: strings need quotes: \"{}\"", t.text) : "");
  }

  // name(args...): a model call when `name` is a registered model, otherwise a
  // built-in op (Graph::op rejects unknown ones, with a suggestion).
  Arg call() {
    const Token& callee = take();
    const Token& open = take();  // '('
    DepthGuard guard(*this, open);
    std::vector<Arg> args;
    Kwargs kwargs;
    if (!accept(')')) {
      while (true) {
        if (peek().kind == Tok::Ident && peek(1).is('=')) {
          const Token& key = take();
          take();  // '='
          kwargs.emplace_back(key.text, keyword_value(key));
        } else {
          if (!kwargs.empty()) {
            fail(peek(), fmt::format("positional argument after keyword argument '{}' "
                                     "in the call of '{}'",
                                     kwargs.back().first, callee.text));
          }
          args.push_back(expr());
        }
        if (accept(')')) break;
        if (!accept(',')) {
          fail(peek(), fmt::format("expected ')' or ',' in the call of '{}' (opened at "
                                   "column {}), got {}",
                                   callee.text, loc(open).column, describe(peek())));
        }
        if (accept(')')) break;  // a trailing comma
      }
    }
    if (graph_.models().count(callee.text)) {
      return model_call(callee, std::move(args), kwargs);
    }
    if (scope_.values.count(callee.text) && find_op(callee.text) == nullptr) {
      fail(callee, fmt::format("'{}' is a value, not a model or an op; it cannot be "
                               "called",
                               callee.text));
    }
    return graph_.op(callee.text, std::move(args), std::move(kwargs), loc(callee));
  }

  Value model_call(const Token& callee, std::vector<Arg> args, const Kwargs& kwargs) {
    if (!kwargs.empty()) {
      fail(callee, fmt::format("model '{}' takes tensors only, not keyword argument "
                               "'{}'",
                               callee.text, kwargs.front().first));
    }
    if (args.empty()) {
      fail(callee, fmt::format("model '{}' is called with no arguments", callee.text));
    }
    std::vector<Value> values;
    for (const auto& a : args) {
      if (const auto* lit = std::get_if<Literal>(&a)) {
        fail(callee,
             fmt::format("model '{}' takes tensors, not the constant {}", callee.text, lit->str()));
      }
      values.push_back(std::get<Value>(a));
    }
    return graph_.call(callee.text, std::move(values), loc(callee));
  }

  // key=value: a constant. A bare model name is the model's name as a string,
  // for adapt(x, like=head).
  Literal keyword_value(const Token& key) {
    const Token& t = peek();
    if (t.kind == Tok::Ident && graph_.models().count(t.text) && !peek(1).is('(') &&
        !peek(1).is('[') && !peek(1).is('.')) {
      take();
      return Literal(t.text);
    }
    const bool outer = in_keyword_;
    in_keyword_ = true;
    Arg value = expr();
    in_keyword_ = outer;
    if (auto* lit = std::get_if<Literal>(&value)) {
      return std::move(*lit);
    }
    fail(t, fmt::format("argument '{}' must be a constant, not a tensor", key.text));
  }

  // A constant: a number, a string, true/false/none or a list of constants.
  // Inside lists, names are strings so that [N, 3, 5] reads as a shape.
  Literal literal(bool names_as_strings) {
    const Token& t = peek();
    if (t.is('-')) {
      take();
      const Token& n = take();
      if (n.kind == Tok::Int) return Literal(-n.i);
      if (n.kind == Tok::Float) return Literal(-n.f);
      fail(n, fmt::format("expected a number after '-', got {}", describe(n)));
    }
    if (auto lit = take_scalar_literal()) return *std::move(lit);
    if (t.kind == Tok::Ident) {
      if (names_as_strings) {
        take();
        return Literal(t.text);
      }
      fail(t, fmt::format("expected an integer or a quoted string, got {}", describe(t)));
    }
    if (t.is('[')) {
      return list();
    }
    fail(t, fmt::format("expected a constant, got {}", describe(t)));
  }

  Literal list() {
    const Token& open = take();  // '['
    DepthGuard guard(*this, open);
    std::vector<Literal> items;
    if (accept(']')) {
      return Literal(std::move(items));
    }
    while (true) {
      items.push_back(literal(/*names_as_strings=*/true));
      if (accept(']')) break;
      if (!accept(',')) {
        fail(peek(), fmt::format("expected ']' or ',' in the list opened at column {}, "
                                 "got {}",
                                 loc(open).column, describe(peek())));
      }
      if (accept(']')) break;  // a trailing comma
    }
    return Literal(std::move(items));
  }

  // a + b, a - b, a * b: ops between tensors, or a tensor and a number;
  // between two numbers the result is folded into a constant.
  Arg arithmetic(char op, Arg a, Arg b, const Token& start) {
    const char* name = op == '+' ? "add" : op == '-' ? "sub" : "mul";
    auto check = [&](const Arg& x) {
      const auto* lit = std::get_if<Literal>(&x);
      if (lit != nullptr && !lit->is_number()) {
        fail(start, fmt::format("'{}' needs tensors or numbers, got {}", op, lit->str()));
      }
      return lit;
    };
    const Literal* la = check(a);
    const Literal* lb = check(b);
    if (la == nullptr || lb == nullptr) {
      return graph_.op(name, {std::move(a), std::move(b)}, {}, loc(start));
    }
    if (la->kind == Literal::Kind::Int && lb->kind == Literal::Kind::Int) {
      int64_t out = 0;
      bool overflow = op == '+'   ? __builtin_add_overflow(la->i, lb->i, &out)
                      : op == '-' ? __builtin_sub_overflow(la->i, lb->i, &out)
                                  : __builtin_mul_overflow(la->i, lb->i, &out);
      if (overflow) {
        fail(start, "integer arithmetic overflows 64 bits");
      }
      return Literal(out);
    }
    const double x = la->number(), y = lb->number();
    return Literal(op == '+' ? x + y : op == '-' ? x - y : x * y);
  }

  Graph& graph_;
  const ExpressionScope& scope_;
  Locator locator_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool in_keyword_ = false;
  std::string current_name_;  // the name the statement assigns, for cycles
};

}  // namespace

Statement parse_statement(Graph& graph, const std::string& text, const ExpressionScope& scope,
                          const SourceLoc& loc) {
  return Parser(graph, text, scope, loc).statement();
}

std::string statement_target(const std::string& text) {
  size_t k = text.find_first_not_of(" \t\r\n");
  if (k == std::string::npos || !is_ident_start(text[k])) {
    return "";
  }
  size_t start = k;
  while (k < text.size() && is_ident_char(text[k])) ++k;
  std::string name = text.substr(start, k - start);
  k = text.find_first_not_of(" \t\r\n", k);
  return k != std::string::npos && text[k] == '=' ? name : "";
}

std::vector<std::string> identifiers_in(const std::string& text) {
  std::vector<std::string> names;
  try {
    Locator locator(text, SourceLoc{});
    for (const auto& t : Tokenizer(text, locator).run()) {
      if (t.kind == Tok::Ident) names.push_back(t.text);
    }
  } catch (const SpecError&) {
    names.clear();  // the statement has its own syntax error, reported later
  }
  return names;
}

}  // namespace detail

Value parse_expression(Graph& graph, const std::string& text,
                       const std::map<std::string, Value>& scope, const SourceLoc& loc) {
  detail::ExpressionScope names{scope, nullptr};
  return detail::Parser(graph, text, names, loc).expression();
}

}  // namespace stitch
