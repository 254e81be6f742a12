// The `train:` section of a spec and its loss expression.

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <type_traits>

#include "ops/expression_text.h"
#include "ops/registry.h"
#include "stitch/train.h"
#include "train/loss_table.h"

namespace stitch {

namespace fs = std::filesystem;
using train_detail::find_loss;
using train_detail::loss_names;
using train_detail::LossDef;

namespace {

const std::vector<std::string> kTrainKeys = {"data",
                                             "feed",
                                             "loss",
                                             "optimizer",
                                             "lr",
                                             "lr_for",
                                             "weight_decay",
                                             "momentum",
                                             "epochs",
                                             "batch",
                                             "val_split",
                                             "shuffle",
                                             "seed",
                                             "out",
                                             "checkpoint_every",
                                             "keep_checkpoints"};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A small recursive-descent parser for
//   loss  := term (('+' | '-') term)*
//   term  := [number '*'] call [('*' | '/') number]
//   call  := name '(' arg (',' arg)* ')'
//   arg   := name | name '=' number | number   (clip(a, b, 0.07): the option)
class LossParser {
 public:
  LossParser(std::string text, std::string where)
      : text_(std::move(text)), where_(std::move(where)) {}

  std::vector<LossTerm> parse() {
    std::vector<LossTerm> terms;
    double sign = 1.0;
    while (true) {
      LossTerm t = term();
      t.weight *= sign;
      terms.push_back(std::move(t));
      skip_space();
      if (pos_ == text_.size()) break;
      if (text_[pos_] == '+') {
        sign = 1.0;
      } else if (text_[pos_] == '-') {
        sign = -1.0;
      } else {
        fail(fmt::format("expected + or the end, found '{}'", text_[pos_]));
      }
      ++pos_;
    }
    return terms;
  }

 private:
  LossTerm term() {
    skip_space();
    double weight = 1.0;
    if (peek_number()) {
      weight = number();
      expect('*');
    }
    LossTerm t = call();
    skip_space();
    if (pos_ < text_.size() && (text_[pos_] == '*' || text_[pos_] == '/')) {
      const char op = text_[pos_++];
      skip_space();
      if (!peek_number()) fail(fmt::format("expected a number after '{}'", op));
      const double by = number();
      if (op == '/' && by == 0) fail("division by zero");
      weight = op == '*' ? weight * by : weight / by;
    }
    t.weight = weight;
    return t;
  }

  LossTerm call() {
    const size_t at = pos_;
    LossTerm t;
    t.fn = name();
    const LossDef* loss = find_loss(t.fn);
    if (loss == nullptr) {
      pos_ = at;
      fail(fmt::format("unknown loss '{}'; the losses are {}", t.fn, join(loss_names())));
    }
    t.options = loss->options;
    std::set<std::string> given;  // options set, by keyword or position
    expect('(');
    while (true) {
      skip_space();
      if (peek_number()) {
        positional_option(t, loss->arity, given);
      } else {
        std::string arg = name();
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == '=') {
          ++pos_;
          keyword_option(t, arg, given);
        } else {
          t.args.push_back(arg);
        }
      }
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      expect(')');
      break;
    }
    if (t.args.size() != loss->arity) {
      fail(fmt::format("{} takes {} tensors, got {} ({})", t.fn, loss->arity, t.args.size(),
                       join(t.args)));
    }
    return t;
  }

  /// clip(a, b, 0.07): a loss's one option (temperature, margin), after
  /// its tensors, as PRODUCT.md writes clip(a, b, temperature).
  void positional_option(LossTerm& t, size_t arity, std::set<std::string>& given) {
    if (t.options.size() != 1 || t.args.size() != arity || given.count(t.options.begin()->first)) {
      fail(t.options.size() == 1
               ? fmt::format("{} takes {} tensors, then {}", t.fn, arity, t.options.begin()->first)
               : fmt::format("{} takes no number", t.fn));
    }
    given.insert(t.options.begin()->first);
    t.options.begin()->second = number();
  }

  /// temperature=0.07
  void keyword_option(LossTerm& t, const std::string& key, std::set<std::string>& given) {
    if (!t.options.count(key)) {
      fail(fmt::format("{} has no option '{}'{}", t.fn, key,
                       t.options.empty() ? "" : " (it takes " + join(keys(t.options)) + ")"));
    }
    skip_space();
    if (!peek_number()) fail(fmt::format("{}= needs a number", key));
    if (!given.insert(key).second) fail(fmt::format("{} is given twice", key));
    t.options[key] = number();
  }

  static std::vector<std::string> keys(const std::map<std::string, double>& m) {
    std::vector<std::string> out;
    for (const auto& [k, v] : m) out.push_back(k);
    return out;
  }

  std::string name() {
    skip_space();
    const size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      ++pos_;
    }
    if (start == pos_ || std::isdigit(static_cast<unsigned char>(text_[start]))) {
      pos_ = start;
      fail("expected a name");
    }
    return text_.substr(start, pos_ - start);
  }

  bool peek_number() const {
    return pos_ < text_.size() &&
           (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.');
  }

  double number() {
    const char* begin = text_.c_str() + pos_;
    char* end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin) fail("expected a number");
    if (!std::isfinite(v)) fail("expected a finite number");
    pos_ += static_cast<size_t>(end - begin);
    return v;
  }

  void expect(char c) {
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] != c) {
      fail(pos_ >= text_.size() ? fmt::format("expected '{}', found the end", c)
                                : fmt::format("expected '{}', found '{}'", c, text_[pos_]));
    }
    ++pos_;
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw SpecError(fmt::format("{}loss, column {}: {}\n  {}\n  {}^", where_, pos_ + 1, what, text_,
                                std::string(pos_, ' ')));
  }

  std::string text_;
  std::string where_;
  size_t pos_ = 0;
};

/// Where train's nodes are: "spec.yaml:12:7: " for a node read from the
/// spec's text, "spec.yaml: " otherwise.
struct TrainSource {
  std::string file;
  bool has_marks = false;

  SourceLoc loc(const YAML::Node& node) const {
    if (has_marks && node.IsDefined() && !node.Mark().is_null()) {
      return SourceLoc{file, node.Mark().line + 1, node.Mark().column + 1};
    }
    return SourceLoc{file};
  }
  std::string at(const YAML::Node& node) const { return loc(node).prefix(); }
};

/// Reads train.<key> as T, or an error naming the key and what was found.
template <typename T>
T scalar(const YAML::Node& node, const std::string& key, const TrainSource& src,
         const char* expected) {
  const std::string where = src.at(node);
  T value;
  try {
    value = node.as<T>();
  } catch (const YAML::Exception&) {
    throw SpecError(fmt::format("{}train.{}: expected {}, got '{}'", where, key, expected,
                                node.IsScalar() ? node.Scalar() : "a list or map"));
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) {
      throw SpecError(
          fmt::format("{}train.{}: expected a finite number, got '{}'", where, key, node.Scalar()));
    }
  }
  return value;
}

void check_positive(double v, const std::string& key, const std::string& where) {
  if (!(v > 0)) throw SpecError(fmt::format("{}train.{}: must be > 0, got {}", where, key, v));
}

std::map<std::string, std::string> read_feed(const YAML::Node& node, const TrainSource& src) {
  const std::string where = src.at(node);
  if (!node.IsMap()) {
    throw SpecError(
        fmt::format("{}train.feed: expected a map of spec inputs/targets to data keys, like "
                    "{{image: images, labels: labels}}",
                    where));
  }
  std::map<std::string, std::string> feed;
  for (const auto& item : node) {
    feed[item.first.as<std::string>()] =
        scalar<std::string>(item.second, "feed." + item.first.as<std::string>(), src, "a data key");
  }
  return feed;
}

bool is_output(const Graph& graph, const std::string& name) {
  for (const auto& [out, v] : graph.outputs()) {
    if (out == name) return true;
  }
  return false;
}

bool is_input(const Graph& graph, const std::string& name) {
  for (int id : graph.inputs()) {
    if (graph.nodes()[id].name == name) return true;
  }
  return false;
}

/// What a value computes with that trains: "model 'student'" or "layer
/// linear(...)", the first found; "" if everything it depends on is frozen.
std::string trainable_part(const Graph& graph, int id) {
  std::vector<int> todo = {id};
  std::set<int> seen;
  while (!todo.empty()) {
    const int at = todo.back();
    todo.pop_back();
    if (!seen.insert(at).second) continue;
    const Node& n = graph.nodes()[at];
    if (n.kind == Node::Kind::Call && !graph.model(n.op).freeze_all) {
      return fmt::format("model '{}'", n.op);
    }
    if (n.kind == Node::Kind::Op) {
      const OpDef* def = find_op(n.op);
      if (def != nullptr && (def->layer != nullptr || n.op == "adapt")) {
        return fmt::format("the layer {}", node_expression(graph, at));
      }
    }
    for (const auto& arg : n.args) {
      if (const Value* v = std::get_if<Value>(&arg)) todo.push_back(v->id());
    }
  }
  return "";
}

/// Every loss name is an output or a target; feed keys are inputs or
/// targets; lr_for keys are models (or layers, checked at build time); a
/// teacher's outputs come from frozen models only.
void check_against_graph(const TrainConfig& c, const Graph& graph, const std::string& loss_at,
                         const std::string& feed_at) {
  std::vector<std::string> outputs;
  for (const auto& [out, v] : graph.outputs()) outputs.push_back(out);
  for (const auto& term : c.loss) {
    for (const auto& arg : term.args) {
      if (is_input(graph, arg)) {
        throw SpecError(fmt::format(
            "{}train.loss: {}({}) reads '{}', which is a graph input; a loss reads graph "
            "outputs ({}) and targets fed from data",
            loss_at, term.fn, join(term.args), arg, join(outputs)));
      }
    }
  }
  for (const auto& term : c.loss) {
    const LossDef* loss = find_loss(term.fn);
    if (loss == nullptr || loss->teacher < 0) continue;
    const std::string& teacher = term.args.at(static_cast<size_t>(loss->teacher));
    for (const auto& [out, v] : graph.outputs()) {
      if (out != teacher) continue;
      const std::string part = trainable_part(graph, v.id());
      if (part.empty()) continue;
      throw SpecError(fmt::format(
          "{}train.loss: {}({}): the teacher's output '{}' is computed with {}, which trains; "
          "a teacher never trains\n  fix: freeze the teacher (freeze: true in its models: "
          "entry) and compute '{}' from it alone",
          loss_at, term.fn, join(term.args), teacher, part, teacher));
    }
  }
  const auto targets = c.targets(graph);
  for (const auto& [name, key] : c.feed) {
    const bool known =
        is_input(graph, name) || std::find(targets.begin(), targets.end(), name) != targets.end();
    if (!known) {
      throw SpecError(
          fmt::format("{}train.feed: '{}' is neither a spec input nor a name the loss reads\n  {}",
                      feed_at, name,
                      targets.empty() ? "the loss reads graph outputs only"
                                      : "the loss reads from data: " + join(targets)));
    }
  }
}

}  // namespace

std::vector<std::string> TrainConfig::targets(const Graph& graph) const {
  std::vector<std::string> out;
  for (const auto& term : loss) {
    for (const auto& arg : term.args) {
      if (!is_output(graph, arg) && std::find(out.begin(), out.end(), arg) == out.end()) {
        out.push_back(arg);
      }
    }
  }
  return out;
}

std::vector<LossTerm> parse_loss(const std::string& text) {
  return LossParser(text, "").parse();
}

TrainConfig parse_train_config(const Spec& spec) {
  const fs::path& spec_file = spec.file;
  const Graph& graph = spec.graph;
  TrainSource src{spec_file.string(), false};
  YAML::Node root;
  try {
    if (!spec.text.empty()) {
      root = YAML::Load(spec.text)["train"];
      src.has_marks = true;
    } else if (!spec.train_yaml.empty()) {
      root = YAML::Load(spec.train_yaml);
    }
  } catch (const YAML::Exception& e) {
    throw SpecError(fmt::format("{}train: {}", src.at(YAML::Node()), e.what()));
  }
  const std::string where = src.at(root);
  if (!root || root.IsNull()) {
    throw SpecError(
        fmt::format("{}the spec has no train: section\n"
                    "  fix: add train: with at least data and loss (see docs/train.md)",
                    where));
  }
  if (!root.IsMap()) throw SpecError(fmt::format("{}train: expected a map", where));
  for (const auto& item : root) {
    const auto key = item.first.as<std::string>();
    if (std::find(kTrainKeys.begin(), kTrainKeys.end(), key) == kTrainKeys.end()) {
      throw SpecError::unknown_name(src.loc(item.first), "key", key, kTrainKeys,
                                    fmt::format("\n  the keys are {}", join(kTrainKeys)), "train");
    }
  }
  const fs::path dir = spec_file.empty() ? fs::current_path() : spec_file.parent_path();
  auto path_of = [&](const std::string& p) {
    fs::path path(p);
    return path.is_absolute() ? path : (dir / path).lexically_normal();
  };

  TrainConfig c;
  if (!root["data"]) throw SpecError(fmt::format("{}train: needs data: FILE", where));
  if (!root["loss"] || root["loss"].IsNull()) {
    throw SpecError(fmt::format("{}train: needs loss:, like cross_entropy(logits, labels)", where));
  }
  c.data = path_of(scalar<std::string>(root["data"], "data", src, "a file name"));
  c.loss_text = scalar<std::string>(root["loss"], "loss", src, "a loss expression");
  c.loss = LossParser(c.loss_text, src.at(root["loss"]) + "train.").parse();
  for (const auto& term : c.loss) {
    auto t = term.options.find("temperature");  // clip's and kd's: a divisor
    if (t != term.options.end() && !(t->second > 0)) {
      throw SpecError(fmt::format("{}train.loss: {}'s temperature must be > 0, got {}",
                                  src.at(root["loss"]), term.fn, t->second));
    }
  }
  if (root["feed"]) c.feed = read_feed(root["feed"], src);
  if (root["optimizer"]) {
    c.optimizer = scalar<std::string>(root["optimizer"], "optimizer", src, "a name");
    if (c.optimizer != "sgd" && c.optimizer != "adam" && c.optimizer != "adamw") {
      throw SpecError(
          fmt::format("{}train.optimizer: unknown optimizer '{}'; use sgd, adam "
                      "or adamw",
                      src.at(root["optimizer"]), c.optimizer));
    }
  }
  if (root["lr"]) c.lr = scalar<double>(root["lr"], "lr", src, "a number");
  check_positive(c.lr, "lr", src.at(root["lr"]));
  if (root["lr_for"]) {
    if (!root["lr_for"].IsMap()) {
      throw SpecError(fmt::format("{}train.lr_for: expected a map like {{vision: 1e-5}}",
                                  src.at(root["lr_for"])));
    }
    for (const auto& item : root["lr_for"]) {
      const auto name = item.first.as<std::string>();
      c.lr_for[name] = scalar<double>(item.second, "lr_for." + name, src, "a number");
      check_positive(c.lr_for[name], "lr_for." + name, src.at(item.second));
    }
  }
  if (root["weight_decay"]) {
    const double decay = scalar<double>(root["weight_decay"], "weight_decay", src, "a number");
    if (decay < 0) {
      throw SpecError(fmt::format("{}train.weight_decay: must be >= 0, got {}",
                                  src.at(root["weight_decay"]), decay));
    }
    c.weight_decay = decay;
  }
  if (root["momentum"]) {
    c.momentum = scalar<double>(root["momentum"], "momentum", src, "a number");
    if (c.optimizer != "sgd") {
      throw SpecError(fmt::format("{}train.momentum: only sgd takes momentum (optimizer is {})",
                                  src.at(root["momentum"]), c.optimizer));
    }
    if (c.momentum < 0) {
      throw SpecError(fmt::format("{}train.momentum: must be >= 0, got {}",
                                  src.at(root["momentum"]), c.momentum));
    }
  }
  if (root["epochs"]) c.epochs = scalar<int64_t>(root["epochs"], "epochs", src, "an integer");
  check_positive(double(c.epochs), "epochs", src.at(root["epochs"]));
  if (root["batch"]) c.batch = scalar<int64_t>(root["batch"], "batch", src, "an integer");
  check_positive(double(c.batch), "batch", src.at(root["batch"]));
  if (root["val_split"]) {
    c.val_split = scalar<double>(root["val_split"], "val_split", src, "a number");
    if (c.val_split < 0 || c.val_split >= 1) {
      throw SpecError(fmt::format("{}train.val_split: must be in [0, 1), got {}",
                                  src.at(root["val_split"]), c.val_split));
    }
  }
  if (root["shuffle"]) c.shuffle = scalar<bool>(root["shuffle"], "shuffle", src, "true or false");
  if (root["seed"]) c.seed = scalar<uint64_t>(root["seed"], "seed", src, "an integer");
  if (root["out"]) {
    const auto out = scalar<std::string>(root["out"], "out", src, "a folder");
    if (out.empty()) {
      throw SpecError(fmt::format(
          "{}train.out is empty\n  fix: name a folder (out: runs/NAME), or leave out: out",
          src.at(root["out"])));
    }
    c.out = path_of(out);
  } else {
    c.out = dir / "runs" / spec_file.stem();
  }
  if (root["checkpoint_every"]) {
    c.checkpoint_every =
        scalar<int64_t>(root["checkpoint_every"], "checkpoint_every", src, "an integer");
  }
  if (root["keep_checkpoints"]) {
    c.keep_checkpoints =
        scalar<int64_t>(root["keep_checkpoints"], "keep_checkpoints", src, "an integer");
    check_positive(double(c.keep_checkpoints), "keep_checkpoints",
                   src.at(root["keep_checkpoints"]));
  }
  check_against_graph(c, graph, src.at(root["loss"]), src.at(root["feed"]));
  return c;
}

}  // namespace stitch
