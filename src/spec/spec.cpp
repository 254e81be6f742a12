#include "stitch/spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>

#include "core/nearest_name.h"
#include "ops/expression_text.h"
#include "ops/registry.h"
#include "spec/expression_parser.h"
#include "util/atomic_file.h"

namespace stitch {

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kTopKeys = {"inputs", "models", "graph", "outputs", "seed", "train"};
const std::vector<std::string> kModelKeys = {"file", "cut", "after", "taps", "freeze", "method"};
// A model entry whose source is a merge (docs/merge.md): `method` is then
// the merge method.
const std::vector<std::string> kMergeModelKeys = {"merge", "method", "weights", "t",
                                                  "base",  "scale",  "density", "seed",
                                                  "cut",   "after",  "taps",    "freeze"};
const std::vector<std::string> kInputKeys = {"shape", "dtype", "probe"};
const std::vector<std::string> kDtypeNames = {"float", "float32",  "float64", "double", "float16",
                                              "half",  "bfloat16", "int64",   "long",   "int32",
                                              "int",   "int16",    "int8",    "uint8",  "bool"};

std::string kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

std::string emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return std::string(out.c_str()) + "\n";
}

/// Where a model file is, as the artifact's stitch/spec.yaml records it: an
/// absolute, normalized path, so the record does not depend on the folder
/// the spec or the artifact is read from.
std::string resolved_path(const fs::path& file) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(file, ec);
  return (ec ? file : absolute).lexically_normal().generic_string();
}

/// The spec "as resolved" (PRODUCT.md): as written, with every path in it
/// (models' `file`, train's `data` and `out`) resolved against the spec's
/// folder. Called after the spec was read, so the nodes are known to be valid.
void resolve_paths(YAML::Node& root, const Graph& graph, const fs::path& dir) {
  if (root["models"]) {
    for (auto entry : root["models"]) {
      const ModelSpec& m = graph.model(entry.first.as<std::string>());
      if (m.merge.empty()) {
        entry.second["file"] = resolved_path(m.file);
        continue;
      }
      YAML::Node sources(YAML::NodeType::Sequence);
      for (const auto& f : m.merge) sources.push_back(resolved_path(f));
      sources.SetStyle(YAML::EmitterStyle::Flow);
      entry.second["merge"] = sources;
      if (!m.merge_options.base().empty()) {
        entry.second["base"] = resolved_path(m.merge_options.base());
      }
    }
  }
  YAML::Node train = root["train"];
  if (!train.IsMap()) return;
  for (const char* key : {"data", "out"}) {
    if (train[key] && train[key].IsScalar()) {
      const fs::path path = train[key].Scalar();
      train[key] = resolved_path(path.is_absolute() ? path : dir / path);
    }
  }
}

// Reads one spec document into a Graph. Every error names the spec's
// file:line:column of the YAML node (or graph expression) at fault.
class SpecReader {
 public:
  SpecReader(Spec& spec, std::string label, fs::path dir)
      : spec_(spec), graph_(spec.graph), label_(std::move(label)), dir_(std::move(dir)) {}

  void read(const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull()) {
      fail(root, "the spec is empty; it needs inputs, graph and outputs");
    }
    if (!root.IsMap()) {
      fail(root, fmt::format("the spec must be a map with keys inputs, models, graph "
                             "and outputs, got {}",
                             kind_of(root)));
    }
    check_keys(root, kTopKeys, "the spec");
    read_inputs(required(root, "inputs"));
    if (root["models"]) read_models(root["models"]);
    read_graph(required(root, "graph"));
    read_outputs(required(root, "outputs"));
    if (root["seed"]) read_seed(root["seed"]);
    if (root["train"] && !root["train"].IsNull()) {
      // train: is read on its own (train_config.cpp), from this text: a key
      // given twice is refused here, where its line is known.
      no_repeated_keys(root["train"], "train");
      spec_.train_yaml = emit(root["train"]);
    }
  }

 private:
  // -- helpers

  SourceLoc loc(const YAML::Node& node) const {
    const YAML::Mark mark = node.IsDefined() ? node.Mark() : YAML::Mark::null_mark();
    if (mark.is_null()) {
      return SourceLoc{label_};
    }
    return SourceLoc{label_, mark.line + 1, mark.column + 1};
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& msg) const {
    throw SpecError(loc(at).prefix() + msg);
  }

  YAML::Node required(const YAML::Node& map, const char* key) const {
    YAML::Node node = map[key];
    if (!node) {
      fail(map, fmt::format("the spec has no '{}:' section", key));
    }
    return node;
  }

  // Unknown keys are errors (a typo must not be silently ignored), and so are
  // keys given twice, which YAML parsers otherwise resolve silently.
  void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed,
                  const std::string& where) const {
    std::map<std::string, int> seen;
    // NOTE: yaml-cpp iterators yield temporaries; bind the pair, not its parts.
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        fail(key, fmt::format("keys of {} must be names, got {}", where, kind_of(key)));
      }
      const std::string& name = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        throw SpecError::unknown_name(loc(key), "key", name, allowed,
                                      fmt::format("\n  known keys: {}", fmt::join(allowed, ", ")),
                                      where);
      }
      check_unique(key, seen, where);
    }
  }

  /// Keys given twice anywhere in a map and the maps inside it. Each map is
  /// walked once, however many aliases (*a) name it: a few lines of nested
  /// aliases name exponentially many maps. A node's place in the text is its
  /// identity (an alias shares its anchor's node, and so its mark).
  void no_repeated_keys(const YAML::Node& map, const std::string& where) const {
    std::set<int> walked;
    no_repeated_keys(map, where, walked);
  }

  void no_repeated_keys(const YAML::Node& map, const std::string& where,
                        std::set<int>& walked) const {
    if (!map.IsMap() || !walked.insert(map.Mark().pos).second) return;
    std::map<std::string, int> seen;
    for (const auto& entry : map) {
      if (!entry.first.IsScalar()) continue;  // the train reader says what it expects
      check_unique(entry.first, seen, where);
      no_repeated_keys(entry.second, where + "." + entry.first.Scalar(), walked);
    }
  }

  void check_unique(const YAML::Node& key, std::map<std::string, int>& seen,
                    const std::string& where) const {
    auto [it, fresh] = seen.emplace(key.Scalar(), loc(key).line);
    if (!fresh) {
      fail(key, fmt::format("'{}' appears twice in {} (first at line {})", key.Scalar(), where,
                            it->second));
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) {
      fail(node, fmt::format("{} must be a string, got {}", what, kind_of(node)));
    }
    return node.Scalar();
  }

  // -- inputs

  void read_inputs(const YAML::Node& inputs) {
    if (!inputs.IsMap() || inputs.size() == 0) {
      fail(inputs, fmt::format("inputs must map each input's name to its shape, like "
                               "'image: [N, 3, 224, 224]'; got {}",
                               inputs.IsMap() ? "an empty map" : kind_of(inputs)));
    }
    std::map<std::string, int> seen;
    for (const auto& entry : inputs) {
      const std::string name = scalar(entry.first, "an input name");
      check_unique(entry.first, seen, "inputs");
      read_input(name, entry.first, entry.second);
    }
    // After all inputs: a probe may name a dim of an input declared later.
    for (const auto& entry : inputs) {
      if (!entry.second.IsMap() || !entry.second["probe"]) continue;
      const std::string name = entry.first.as<std::string>();
      graph_.probe_with(scope_.at(name),
                        read_dim(fmt::format("probe: of input '{}'", name), entry.second["probe"]));
    }
  }

  void read_input(const std::string& name, const YAML::Node& key, const YAML::Node& value) {
    // NOTE: never assign one YAML::Node to another: yaml-cpp's operator=
    // writes through to the document. Read the two forms separately.
    at::ScalarType dtype = at::kFloat;
    Shape shape;
    if (value.IsMap()) {
      const std::string where = "inputs." + name;
      check_keys(value, kInputKeys, where);
      if (!value["shape"]) {
        fail(value, fmt::format("{} has no 'shape:'", where));
      }
      shape = read_shape(name, value["shape"]);
      if (value["dtype"]) dtype = read_dtype(value["dtype"]);
    } else {
      shape = read_shape(name, value);
    }
    Value v = graph_.input(name, std::move(shape), dtype, loc(key));
    scope_[name] = v;
    assigned_at_[name] = loc(key).line;
  }

  at::ScalarType read_dtype(const YAML::Node& node) const {
    const std::string name = scalar(node, "dtype");
    auto dtype = parse_dtype(name);
    if (!dtype) {
      throw SpecError::unknown_name(
          loc(node), "dtype", name, kDtypeNames,
          fmt::format("\n  known dtypes: {}", fmt::join(kDtypeNames, ", ")));
    }
    return *dtype;
  }

  Shape read_shape(const std::string& input, const YAML::Node& node) const {
    if (!node.IsSequence()) {
      fail(node, fmt::format("the shape of input '{}' must be a list like "
                             "[N, 3, 224, 224], got {}",
                             input, kind_of(node)));
    }
    Shape shape;
    for (const auto& d : node) {
      shape.push_back(read_dim(fmt::format("a dimension of input '{}'", input), d));
    }
    return shape;
  }

  // 224, N, or a product of them (2*N, N*T) as written by to_spec_yaml.
  // `what` names the place: "a dimension of input 'x'".
  Dim read_dim(const std::string& what, const YAML::Node& node) const {
    std::optional<Dim> dim;
    try {
      if (node.IsScalar()) dim = Dim::parse(node.Scalar());
    } catch (const ShapeError& e) {
      fail(node, fmt::format("{}: {}", what, e.what()));
    }
    if (!dim) {
      fail(node,
           fmt::format("{} must be an integer or a name like N, got {}", what, kind_of(node)));
    }
    return *dim;
  }

  // -- models

  void read_models(const YAML::Node& models) {
    if (models.IsNull()) return;
    if (!models.IsMap()) {
      fail(models, fmt::format("models must map each model's name to its settings, "
                               "like 'vision: {{file: resnet18.pt}}'; got {}",
                               kind_of(models)));
    }
    std::map<std::string, int> seen;
    for (const auto& entry : models) {
      const std::string name = scalar(entry.first, "a model name");
      check_unique(entry.first, seen, "models");
      if (scope_.count(name)) {
        fail(entry.first, fmt::format("model '{}' has the same name as an input; choose "
                                      "another name",
                                      name));
      }
      graph_.add_model(read_model(name, entry.first, entry.second));
    }
  }

  ModelSpec read_model(const std::string& name, const YAML::Node& key,
                       const YAML::Node& value) const {
    const std::string where = "models." + name;
    if (!value.IsMap()) {
      fail(value.IsNull() ? key : value,
           fmt::format("{} must be a map like {{file: resnet18.pt}}, got {}", where,
                       kind_of(value)));
    }
    const bool merge = bool(value["merge"]);
    check_keys(value, merge ? kMergeModelKeys : kModelKeys, where);
    ModelSpec m;
    m.name = name;
    m.loc = loc(key);
    if (merge) {
      read_merge(value, where, m);
    } else {
      if (!value["file"]) {
        fail(key, fmt::format("model '{}' has no 'file:' (the TorchScript file to use, or "
                              "'merge:' with the files to merge)",
                              name));
      }
      m.file = path_in_spec(value["file"], where + ".file");
      if (value["method"]) m.method = scalar(value["method"], where + ".method");
    }
    if (value["cut"]) m.cut = scalar(value["cut"], where + ".cut");
    if (value["after"]) m.after = scalar(value["after"], where + ".after");
    if (value["taps"]) m.taps = string_list(value["taps"], where + ".taps");
    if (value["freeze"]) read_freeze(value["freeze"], where, m);
    return m;
  }

  /// A file named in the spec, relative to the spec's folder (not to the
  /// current directory).
  fs::path path_in_spec(const YAML::Node& node, const std::string& what) const {
    const std::string file = scalar(node, what);
    if (file.empty()) fail(node, fmt::format("{} is empty", what));
    return fs::path(file).is_absolute() ? fs::path(file) : dir_ / file;
  }

  double number(const YAML::Node& node, const std::string& what) const {
    double v = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || !std::isfinite(v)) {
      fail(node, fmt::format("{} must be a number, got {}", what, kind_of(node)));
    }
    return v;
  }

  // merge: [a.pt, b.pt] with method, weights, t, base, scale, density, seed.
  void read_merge(const YAML::Node& value, const std::string& where, ModelSpec& m) const {
    const YAML::Node sources = value["merge"];
    if (!sources.IsSequence() || sources.size() == 0) {
      fail(sources, fmt::format("{}.merge must be a list of model files, like [a.pt, b.pt]; "
                                "got {}",
                                where, kind_of(sources)));
    }
    for (const auto& item : sources) m.merge.push_back(path_in_spec(item, where + ".merge"));
    m.file = m.merge.front();
    MergeOptions& o = m.merge_options;
    if (value["method"]) {
      const std::string name = scalar(value["method"], where + ".method");
      MergeMethod method{};
      if (!parse_merge_method(name, method)) {
        throw SpecError::unknown_name(
            loc(value["method"]), "merge method", name, merge_method_list(),
            fmt::format("\n  the merge methods are {} (in a merge entry, method: is the merge "
                        "method)",
                        merge_method_names()),
            where);
      }
      o.method(method);
    }
    for (const auto& option : merge_option_names()) {
      if (value[option] && !o.uses(option)) {
        fail(value[option], fmt::format("{}.{} is not an option of the {} method (its options: {})",
                                        where, option, merge_method_name(o.method()),
                                        fmt::join(merge_method_options(o.method()), ", ")));
      }
    }
    if (value["t"]) o.t(number(value["t"], where + ".t"));
    if (value["scale"]) o.scale(number(value["scale"], where + ".scale"));
    if (value["density"]) o.density(number(value["density"], where + ".density"));
    if (value["seed"]) {
      const double seed = number(value["seed"], where + ".seed");
      if (seed < 0 || seed != std::floor(seed) || seed > 9007199254740992.0) {
        fail(value["seed"], fmt::format("{}.seed must be a whole number >= 0", where));
      }
      o.seed(static_cast<uint64_t>(seed));
    }
    if (value["base"]) o.base(path_in_spec(value["base"], where + ".base"));
    if (const YAML::Node weights = value["weights"]) {
      try {
        if (weights.IsSequence()) {
          std::vector<double> w;
          for (const auto& item : weights) w.push_back(number(item, where + ".weights"));
          o.weights(w);
        } else {
          parse_merge_weights(scalar(weights, where + ".weights"), m.merge.size(), o);
        }
      } catch (const SpecError&) {
        throw;
      } catch (const Error& e) {
        fail(weights, fmt::format("{}.{}", where, e.what()));
      }
    }
    try {
      o.validate(m.merge.size(), where + ".");
    } catch (const Error& e) {
      fail(value["merge"], e.what());
    }
  }

  std::vector<std::string> string_list(const YAML::Node& node, const std::string& what) const {
    if (node.IsScalar()) {
      return {node.Scalar()};
    }
    if (!node.IsSequence()) {
      fail(node, fmt::format("{} must be a list of names, got {}", what, kind_of(node)));
    }
    std::vector<std::string> out;
    for (const auto& item : node) {
      out.push_back(scalar(item, "each item of " + what));
    }
    return out;
  }

  // freeze: true | false | [glob, ...] (a single glob is accepted too).
  void read_freeze(const YAML::Node& node, const std::string& where, ModelSpec& m) const {
    bool all = false;
    if (node.IsScalar() && YAML::convert<bool>::decode(node, all)) {
      m.freeze_all = all;
      return;
    }
    if (!node.IsScalar() && !node.IsSequence()) {
      fail(node, fmt::format("{}.freeze must be true, false or a list of parameter "
                             "globs like [conv1.*, layer1.*], got {}",
                             where, kind_of(node)));
    }
    m.freeze = string_list(node, where + ".freeze");
  }

  // -- graph

  void read_graph(const YAML::Node& graph) {
    if (!graph.IsSequence()) {
      fail(graph, fmt::format("graph must be a list of 'name = expression' entries, "
                              "got {}",
                              kind_of(graph)));
    }
    if (graph.size() == 0) {
      fail(graph, "the graph is empty; add entries like '- y = linear(x, 5)'");
    }
    // Every name the list assigns, so that a name used too early is reported as
    // such (or as a cycle) rather than as unknown.
    std::map<std::string, detail::LaterAssignment> later;
    for (const auto& entry : graph) {
      if (!entry.IsScalar()) continue;
      std::string name = detail::statement_target(entry.Scalar());
      if (!name.empty() && !later.count(name)) {
        later[name] = {loc(entry).line, entry.Scalar()};
      }
    }
    for (const auto& entry : graph) {
      read_statement(entry, later);
    }
  }

  // Where the text of a scalar starts: after the quote of a quoted scalar.
  // yaml-cpp tags plain scalars "?" and quoted ones "!".
  SourceLoc text_loc(const YAML::Node& scalar_node) const {
    SourceLoc at = loc(scalar_node);
    if (at.known() && scalar_node.Tag() == "!") {
      at.column += 1;
    }
    return at;
  }

  void read_statement(const YAML::Node& entry,
                      const std::map<std::string, detail::LaterAssignment>& later) {
    if (entry.IsMap() && entry.size() == 1) {
      const std::string key = entry.begin()->first.Scalar();
      fail(entry, fmt::format("graph entries are strings 'name = expression': write "
                              "'- {} = ...' rather than '- {}: ...'",
                              key, key));
    }
    if (!entry.IsScalar()) {
      fail(entry, fmt::format("a graph entry must be 'name = expression', got {}", kind_of(entry)));
    }
    detail::ExpressionScope names{scope_, &later};
    const std::string name = detail::statement_target(entry.Scalar());
    check_assignable(name, entry);
    detail::Statement s = detail::parse_statement(graph_, entry.Scalar(), names, text_loc(entry));
    // An alias (`y = x`) or a value that is already named keeps its name; the
    // new name just refers to it.
    if (graph_.node(s.value).name.empty()) {
      graph_.set_name(s.value, s.name);
    }
    scope_[s.name] = s.value;
    assigned_at_[s.name] = s.name_loc.line;
  }

  void check_assignable(const std::string& name, const YAML::Node& entry) const {
    if (name.empty()) {
      return;  // not `name = ...`: the parser reports it with a column
    }
    const SourceLoc at = text_loc(entry);
    auto error = [&](const std::string& msg) {
      const size_t offset = entry.Scalar().find(name);
      SourceLoc name_loc = at;
      if (name_loc.known()) name_loc.column += static_cast<int>(offset);
      throw SpecError(name_loc.prefix() + msg);
    };
    if (graph_.models().count(name)) {
      error(
          fmt::format("'{}' is the name of a model; choose another name for this "
                      "value",
                      name));
    }
    auto it = assigned_at_.find(name);
    if (it != assigned_at_.end()) {
      error(fmt::format("'{}' is assigned twice (first at line {})", name, it->second));
    }
  }

  // -- outputs, seed

  void read_outputs(const YAML::Node& outputs) {
    if (outputs.IsScalar()) {
      read_output(outputs);
      return;
    }
    if (!outputs.IsSequence() || outputs.size() == 0) {
      fail(outputs, fmt::format("outputs must list the names forward returns, like "
                                "[logits]; got {}",
                                outputs.IsSequence() ? "an empty list" : kind_of(outputs)));
    }
    for (const auto& item : outputs) {
      read_output(item);
    }
  }

  void read_output(const YAML::Node& item) {
    const std::string name = scalar(item, "an output");
    auto it = scope_.find(name);
    if (it == scope_.end()) {
      std::vector<std::string> names;
      for (const auto& [n, v] : scope_) names.push_back(n);
      std::string near = nearest_name(name, names);
      std::string what = graph_.models().count(name)
                             ? fmt::format("; '{}' is a model, outputs name values", name)
                             : "";
      fail(item, fmt::format("output '{}' names nothing{}{}", name, what,
                             near.empty() ? "" : fmt::format("\n  fix: did you mean '{}'?", near)));
    }
    graph_.output(name, it->second, loc(item));
  }

  void read_seed(const YAML::Node& node) {
    uint64_t seed = 0;
    if (!node.IsScalar() || !YAML::convert<uint64_t>::decode(node, seed) ||
        node.Scalar().find('-') != std::string::npos) {
      fail(node, fmt::format("seed must be a non-negative integer, got {}", kind_of(node)));
    }
    graph_.seed = seed;
  }

  Spec& spec_;
  Graph& graph_;
  std::string label_;
  fs::path dir_;                            // the spec's folder: model files are relative to it
  std::map<std::string, Value> scope_;      // inputs and assigned names
  std::map<std::string, int> assigned_at_;  // name -> line it is assigned at
};

// ---- documents ---------------------------------------------------------------

/// Where each YAML document starts, and its first value (none for an empty
/// document), from the parser's events: aliases are not followed.
class DocumentMarks : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;
    std::optional<YAML::Mark> value;
  };
  std::vector<Document> documents;

  void OnDocumentStart(const YAML::Mark& mark) override { documents.push_back({mark, {}}); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { saw(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    saw(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    saw(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    saw(mark);
  }
  void OnMapEnd() override {}

 private:
  void saw(const YAML::Mark& mark) {
    if (!documents.back().value) documents.back().value = mark;
  }
};

SourceLoc loc_at(const std::string& label, const YAML::Mark& mark) {
  return SourceLoc{label, mark.line + 1, mark.column + 1};
}

/// A spec is one YAML document: a second one would be ignored, so it is
/// refused (an empty one after a trailing '---' is nothing). yaml-cpp's
/// LoadAll never returns on a token no document can start with (a ',' at
/// the top level: it reads an empty document there without moving on), so
/// the documents are walked here, and a document starting where the last
/// one did is that token.
void only_one_document(const std::string& text, const std::string& label) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentMarks marks;
  while (parser.HandleNextDocument(marks)) {
    const auto& docs = marks.documents;
    if (docs.size() < 2) continue;
    const YAML::Mark& start = docs.back().start;
    if (start.pos == docs[docs.size() - 2].start.pos) {
      const char c = start.pos >= 0 && size_t(start.pos) < text.size() ? text[start.pos] : '?';
      throw SpecError(fmt::format("{}invalid YAML: '{}' starts no value here",
                                  loc_at(label, start).prefix(), c));
    }
    if (docs.back().value) {
      throw SpecError(
          fmt::format("{}a second YAML document: a spec is one, and the rest would be ignored\n"
                      "  fix: remove the '---' line before this, or split the file",
                      loc_at(label, *docs.back().value).prefix()));
    }
  }
}

// ---- to_spec_yaml ------------------------------------------------------------

// Writes nodes as `name = expression` statements. A node used once, without a
// name, is written inline in its user; nesting is capped so that the text reads
// back within the parser's depth limit.
class SpecWriter {
 public:
  explicit SpecWriter(const Graph& graph) : graph_(graph) {}

  std::string yaml() {
    YAML::Emitter out;
    out << YAML::BeginMap;
    write_inputs(out);
    write_models(out);
    write_graph(out);
    out << YAML::Key << "outputs" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& [name, v] : graph_.outputs()) out << name;
    out << YAML::EndSeq;
    if (graph_.seed != 0) {
      out << YAML::Key << "seed" << YAML::Value << graph_.seed;
    }
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
  }

 private:
  static constexpr int kMaxInlineDepth = 16;

  void write_inputs(YAML::Emitter& out) const {
    out << YAML::Key << "inputs" << YAML::Value << YAML::BeginMap;
    for (int id : graph_.inputs()) {
      const Node& n = graph_.nodes()[id];
      out << YAML::Key << n.name << YAML::Value;
      const bool plain = n.dtype == at::kFloat;
      if (!plain) {
        out << YAML::Flow << YAML::BeginMap << YAML::Key << "shape" << YAML::Value;
      }
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& d : n.shape) {
        if (d.is_static()) {
          out << d.size();
        } else {
          out << d.str();
        }
      }
      out << YAML::EndSeq;
      if (!plain) {
        out << YAML::Key << "dtype" << YAML::Value << dtype_str(n.dtype);
        if (n.probe) {
          out << YAML::Key << "probe" << YAML::Value;
          if (n.probe->is_static()) {
            out << n.probe->size();
          } else {
            out << n.probe->str();
          }
        }
        out << YAML::EndMap;
      }
    }
    out << YAML::EndMap;
  }

  void write_models(YAML::Emitter& out) const {
    if (graph_.model_order().empty()) return;
    out << YAML::Key << "models" << YAML::Value << YAML::BeginMap;
    for (const auto& name : graph_.model_order()) {
      const ModelSpec& m = graph_.model(name);
      out << YAML::Key << name << YAML::Value << YAML::Flow << YAML::BeginMap;
      if (m.merge.empty()) {
        out << YAML::Key << "file" << YAML::Value << resolved_path(m.file);
      } else {
        write_merge(out, m);
      }
      if (!m.cut.empty()) out << YAML::Key << "cut" << YAML::Value << m.cut;
      if (!m.after.empty()) out << YAML::Key << "after" << YAML::Value << m.after;
      if (!m.taps.empty()) {
        out << YAML::Key << "taps" << YAML::Value << YAML::Flow << m.taps;
      }
      if (m.freeze_all) {
        out << YAML::Key << "freeze" << YAML::Value << true;
      } else if (!m.freeze.empty()) {
        out << YAML::Key << "freeze" << YAML::Value << YAML::Flow << m.freeze;
      }
      if (m.method != "forward") {
        out << YAML::Key << "method" << YAML::Value << m.method;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }

  static void write_merge(YAML::Emitter& out, const ModelSpec& m) {
    std::vector<std::string> files;
    for (const auto& f : m.merge) files.push_back(resolved_path(f));
    const MergeOptions& o = m.merge_options;
    out << YAML::Key << "merge" << YAML::Value << YAML::Flow << files;
    out << YAML::Key << "method" << YAML::Value << merge_method_name(o.method());
    for (const auto& option : merge_method_options(o.method())) {
      if (option == "weights") {
        if (!o.glob_weights().empty()) {
          out << YAML::Key << "weights" << YAML::Value << merge_weights_text(o);
        } else if (!o.weights().empty()) {
          std::vector<std::string> w;
          for (double v : o.weights()) w.push_back(fmt::format("{}", v));
          out << YAML::Key << "weights" << YAML::Value << YAML::Flow << w;
        }
      } else if (option == "base") {
        out << YAML::Key << "base" << YAML::Value << resolved_path(o.base());
      } else if (option == "seed") {
        out << YAML::Key << "seed" << YAML::Value << o.seed();
      } else {
        out << YAML::Key << option << YAML::Value << fmt::format("{}", o.number(option));
      }
    }
  }

  void write_graph(YAML::Emitter& out) {
    plan();
    out << YAML::Key << "graph" << YAML::Value << YAML::BeginSeq;
    const auto& nodes = graph_.nodes();
    for (size_t id = 0; id < nodes.size(); ++id) {
      if (nodes[id].kind != Node::Kind::Input && !inline_[id]) {
        out << fmt::format("{} = {}", var_[id], expression(static_cast<int>(id)));
      }
    }
    // Outputs whose value goes by another name.
    for (const auto& [name, v] : graph_.outputs()) {
      if (var_[v.id()] != name) {
        out << fmt::format("{} = {}", name, var_[v.id()]);
      }
    }
    out << YAML::EndSeq;
  }

  // Decides which nodes get a statement and under which name.
  void plan() {
    const auto& nodes = graph_.nodes();
    const size_t count = nodes.size();
    std::vector<int> uses(count, 0), depth(count, 1);
    std::vector<bool> is_output(count, false);
    for (const auto& n : nodes) {
      for (const auto& a : n.args) {
        if (const auto* v = std::get_if<Value>(&a)) ++uses[v->id()];
      }
    }
    for (const auto& [name, v] : graph_.outputs()) is_output[v.id()] = true;
    std::set<std::string> taken(graph_.model_order().begin(), graph_.model_order().end());
    for (const auto& n : nodes) {
      if (!n.name.empty()) taken.insert(n.name);
    }
    var_.assign(count, "");
    inline_.assign(count, false);
    for (const auto& [name, v] : graph_.outputs()) {
      if (var_[v.id()].empty() && nodes[v.id()].name.empty() && !taken.count(name)) {
        var_[v.id()] = name;
        taken.insert(name);
      }
    }
    int fresh = 0;
    for (size_t id = 0; id < count; ++id) {
      const Node& n = nodes[id];
      for (const auto& a : n.args) {
        if (const auto* v = std::get_if<Value>(&a)) {
          if (inline_[v->id()]) depth[id] = std::max(depth[id], depth[v->id()] + 1);
        }
      }
      if (!n.name.empty()) {
        var_[id] = n.name;
        continue;
      }
      if (!var_[id].empty()) continue;  // named after an output
      if (uses[id] == 1 && !is_output[id] && depth[id] < kMaxInlineDepth) {
        inline_[id] = true;
        continue;
      }
      std::string name;
      do {
        name = fmt::format("v{}", ++fresh);
      } while (taken.count(name));
      taken.insert(name);
      var_[id] = name;
    }
  }

  std::string expression(int id) const {
    return expression_text(graph_, id, [this](int v) { return inline_[v] ? "" : var_[v]; });
  }

  const Graph& graph_;
  std::vector<std::string> var_;  // statement name per node ("" when inlined)
  std::vector<bool> inline_;
};

}  // namespace

Spec load_spec(const std::filesystem::path& file) {
  // read_file refuses FIFOs, devices and folders before reading a byte.
  return parse_spec(read_file(file), file);
}

Spec parse_spec(const std::string& text, const std::filesystem::path& file) {
  Spec spec;
  spec.file = file;
  spec.text = text;
  const std::string label = file.string();
  auto yaml_error = [&](const YAML::Exception& e, const char* what) {
    SourceLoc at{label};
    if (!e.mark.is_null()) {
      at.line = e.mark.line + 1;
      at.column = e.mark.column + 1;
    }
    return SpecError(at.prefix() + what + e.msg);
  };
  try {
    only_one_document(text, label);
    YAML::Node root = YAML::Load(text);
    SpecReader(spec, label, file.parent_path()).read(root);
    resolve_paths(root, spec.graph, file.parent_path());
    spec.graph.spec_yaml = emit(root);
  } catch (const YAML::ParserException& e) {
    throw yaml_error(e, "invalid YAML: ");
  } catch (const YAML::Exception& e) {
    // A conversion the reader did not guard; still an error in the spec.
    throw yaml_error(e, "");
  }
  return spec;
}

std::string to_spec_yaml(const Graph& graph) {
  return SpecWriter(graph).yaml();
}

}  // namespace stitch
