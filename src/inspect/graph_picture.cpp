#include "stitch/graph_picture.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/script.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "check/analysis.h"
#include "ops/expression_text.h"
#include "ops/registry.h"
#include "stitch/artifact.h"
#include "stitch/spec.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace stitch {

namespace {

// Colours: models yellow, frozen models grey, learned layers green, adapters
// orange (dashed), inputs blue, outputs pink; other ops white.
constexpr const char* kInputFill = "#dbeafe";
constexpr const char* kOutputFill = "#fce7f3";
constexpr const char* kModelFill = "#fef3c7";
constexpr const char* kFrozenFill = "#e5e7eb";
constexpr const char* kLearnedFill = "#dcfce7";
constexpr const char* kAdapterFill = "#fed7aa";

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// An HTML-like label: a bold title and smaller lines under it.
std::string label(const std::string& title, const std::vector<std::string>& lines) {
  std::string out = "<<b>" + escape(title) + "</b>";
  for (const auto& line : lines) {
    if (!line.empty()) out += "<br/><font point-size=\"9\">" + escape(line) + "</font>";
  }
  return out + ">";
}

std::string node_line(const std::string& id, const std::string& label_text, const std::string& fill,
                      const std::string& style = "rounded,filled", const std::string& extra = "") {
  return fmt::format("  {} [label={}, fillcolor=\"{}\", style=\"{}\"{}];\n", id, label_text, fill,
                     style, extra);
}

bool is_learned(const std::string& op) {
  const OpDef* def = find_op(op);
  return def != nullptr && def->signature.family == "learned";
}

/// key=value for the keywords that differ from the op's defaults.
std::string kwargs_text(const Node& n) {
  const OpDef* def = find_op(n.op);
  std::vector<std::string> parts;
  for (const auto& [key, value] : n.kwargs) {
    if (value.kind == Literal::Kind::None) continue;
    const ParamDef* p = def != nullptr ? def->signature.param(key) : nullptr;
    const bool is_default = p != nullptr && p->fallback && p->fallback->str() == value.str();
    if (!is_default) parts.push_back(key + "=" + value.str());
  }
  for (const auto& a : n.args) {
    if (const auto* lit = std::get_if<Literal>(&a)) parts.push_back(lit->str());
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

/// [N, 512] for the literal ["N", 512].
std::string shape_text(const Literal& list) {
  std::vector<std::string> parts;
  for (const auto& item : list.items) {
    parts.push_back(item.kind == Literal::Kind::String ? item.s : item.str());
  }
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

std::string freeze_text(const ModelSpec& spec) {
  if (spec.freeze_all) return "frozen";
  if (spec.freeze.empty()) return "";
  return fmt::format("frozen: {}", fmt::join(spec.freeze, ", "));
}

class DotWriter {
 public:
  DotWriter(const Graph& g, const CheckReport* report) : g_(g), report_(report) {}

  std::string write(const std::string& caption) {
    std::string out =
        "digraph stitch {\n"
        "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=10, nodesep=0.35, "
        "ranksep=0.45, labelloc=b, labeljust=l";
    if (!caption.empty()) out += ", label=\"" + escape(caption) + "\"";
    out +=
        "];\n"
        "  node [fontname=\"Helvetica\", fontsize=11, shape=box, margin=\"0.15,0.06\"];\n"
        "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#4b5563\", "
        "fontcolor=\"#1f2937\"];\n";
    for (size_t id = 0; id < g_.nodes().size(); ++id) out += node(static_cast<int>(id));
    for (size_t id = 0; id < g_.nodes().size(); ++id) out += edges_into(static_cast<int>(id));
    out += outputs();
    return out + "}\n";
  }

 private:
  static std::string id_of(int id) { return fmt::format("n{}", id); }

  /// Index and attribute nodes are drawn as a suffix on the edge from what
  /// they index (vision(image)[0] -> an edge from vision labelled [0]).
  std::pair<int, std::string> root(int id) const {
    std::string suffix;
    while (true) {
      const Node& n = g_.nodes()[id];
      if (n.kind == Node::Kind::Index) {
        suffix = "[" + std::get<Literal>(n.args[1]).str() + "]" + suffix;
      } else if (n.kind == Node::Kind::Attr) {
        suffix = "." + n.op + suffix;
      } else {
        return {id, suffix};
      }
      id = std::get<Value>(n.args[0]).id();
    }
  }

  std::string type_text(int id) const {
    if (report_ == nullptr) return "";
    return report_->nodes.at(id).type.str();
  }

  std::string note(int id) const { return report_ == nullptr ? "" : report_->nodes.at(id).note; }

  std::string node(int id) {
    const Node& n = g_.nodes()[id];
    const std::string title = n.name.empty() ? n.op : n.name + " = " + n.op;
    switch (n.kind) {
      case Node::Kind::Input:
        return node_line(id_of(id), label(n.name, {"input"}), kInputFill);
      case Node::Kind::Index:
      case Node::Kind::Attr:
        return "";
      case Node::Kind::Call: {
        const ModelSpec& spec = g_.model(n.op);
        const std::string frozen = freeze_text(spec);
        return node_line(
            id_of(id),
            label(n.name.empty() ? n.op : n.name + " = " + n.op, {spec.describe(), frozen}),
            frozen.empty() ? kModelFill : kFrozenFill, "filled,bold");
      }
      case Node::Kind::Op:
        break;
    }
    if (n.op == "adapt") {
      // "to [N, 512]", the shapes, then one line per step of the adapter.
      std::vector<std::string> lines;
      const Literal* like = n.kwarg("like");
      const Literal* to = n.kwarg("to");
      if (like && like->kind == Literal::Kind::String) lines.push_back("like " + like->s);
      if (to && to->kind == Literal::Kind::List) lines.push_back("to " + shape_text(*to));
      std::string how = note(id);
      if (how.rfind("adapt: ", 0) == 0) how = how.substr(7);
      for (size_t at = 0; !how.empty();) {
        size_t cut = how.find(at == 0 ? " by " : ", then ", at);
        lines.push_back(how.substr(at, cut == std::string::npos ? cut : cut - at));
        if (cut == std::string::npos) break;
        at = cut + (how.compare(cut, 4, " by ") == 0 ? 4 : 2);
      }
      return node_line(id_of(id), label(title + "  (adapter)", lines), kAdapterFill,
                       "rounded,filled,dashed");
    }
    std::string detail = note(id);
    if (detail.empty()) detail = kwargs_text(n);
    return node_line(id_of(id), label(title, {detail}),
                     is_learned(n.op) ? kLearnedFill : "#ffffff");
  }

  std::string edge(int from, int to, const std::string& port_text) const {
    auto [src, suffix] = root(from);
    std::string text = suffix;
    const std::string type = type_text(from);
    if (!type.empty()) text += (text.empty() ? "" : " ") + type;
    if (!port_text.empty()) text = port_text + ": " + text;
    return fmt::format("  {} -> {} [label=\"{}\"];\n", id_of(src), to < 0 ? "" : id_of(to),
                       escape(text));
  }

  std::string edges_into(int id) const {
    const Node& n = g_.nodes()[id];
    if (n.kind == Node::Kind::Index || n.kind == Node::Kind::Attr || n.kind == Node::Kind::Input) {
      return "";
    }
    std::string out;
    for (const auto& a : n.args) {
      if (const auto* v = std::get_if<Value>(&a)) out += edge(v->id(), id, "");
    }
    return out;
  }

  std::string outputs() const {
    std::string out;
    for (const auto& [name, v] : g_.outputs()) {
      const std::string id = "out_" + name;
      out += node_line(id, label(name, {"output"}), kOutputFill);
      auto [src, suffix] = root(v.id());
      std::string text = suffix;
      const std::string type = type_text(v.id());
      if (!type.empty()) text += (text.empty() ? "" : " ") + type;
      out += fmt::format("  {} -> {} [label=\"{}\"];\n", id_of(src), id, escape(text));
    }
    return out;
  }

  const Graph& g_;
  const CheckReport* report_;
};

/// Model files of a spec that are not where the spec says.
std::vector<std::string> missing_files(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& name : g.model_order()) {
    std::error_code ec;
    if (!fs::is_regular_file(g.model(name).file, ec)) {
      out.push_back(g.model(name).file.filename().string());
    }
  }
  return out;
}

/// The artifact's own models, as it runs them (cut, tapped, merged), for
/// the stored spec's model entries; nothing when one is not a submodule of
/// it (compose --optimize folds them into its code).
std::optional<std::map<std::string, Component>> built_components(const fs::path& file,
                                                                 const Graph& graph) {
  const torch::jit::Module artifact = load_module(file);
  std::map<std::string, Component> out;
  for (const auto& name : graph.model_order()) {
    if (!artifact.hasattr(name) || !artifact.attr(name).isModule()) return std::nullopt;
    Component c;
    c.spec = graph.model(name);
    c.module = artifact.attr(name).toModule();
    c.module.eval();
    out.emplace(name, std::move(c));
  }
  return out;
}

std::string artifact_dot(const fs::path& file, const std::string& spec_yaml) {
  // The shapes come from the artifact's own models, so the model files are
  // needed only for an artifact without them (--optimize). The stored
  // spec's model paths are absolute; older artifacts' relative ones are read
  // relative to the artifact's folder.
  Spec s = parse_spec(spec_yaml, file.parent_path() / "spec.yaml");
  const std::string caption = file.filename().string();
  auto without_shapes = [&](const std::string& why) {
    return graph_dot(s.graph, nullptr, fmt::format("{} (shapes not shown: {})", caption, why));
  };
  auto components = built_components(file, s.graph);
  if (!components) {
    const auto missing = missing_files(s.graph);
    if (!missing.empty()) {
      return without_shapes(fmt::format("model files not found: {}", fmt::join(missing, ", ")));
    }
  }
  try {
    const CheckReport report =
        components ? report_of(s.graph, analyze(s.graph, std::move(*components))) : check(s.graph);
    return graph_dot(s.graph, &report, caption);
  } catch (const Error& e) {
    const std::string why = e.what();
    return without_shapes(why.substr(0, why.find('\n')));
  }
}

/// Graphviz's dot on PATH, or "" when it is not installed.
std::string find_dot() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    fs::path candidate = fs::path(dirs.substr(start, end - start)) / "dot";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

}  // namespace

std::string graph_dot(const Graph& graph, const CheckReport* report, const std::string& caption) {
  return DotWriter(graph, report).write(caption);
}

std::string module_dot(const torch::jit::Module& module, const std::string& name) {
  std::string out =
      "digraph stitch {\n"
      "  graph [rankdir=TB, fontname=\"Helvetica\"];\n"
      "  node [fontname=\"Helvetica\", fontsize=11, shape=box];\n"
      "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  const auto& schema = module.get_method("forward").function().getSchema();
  std::vector<std::string> children;
  for (const auto& child : module.named_children()) children.push_back(child.name);
  if (children.size() > 8) {
    children.resize(8);
    children.push_back("...");
  }
  int64_t params = 0;
  for (const auto& p : module.named_parameters(true)) params += p.value.numel();
  const std::string type = module.type()->name() ? module.type()->name()->name() : "Module";
  out += node_line(
      "model",
      label(name,
            {type,
             children.empty() ? "" : "children: " + fmt::format("{}", fmt::join(children, ", ")),
             fmt::format("{} parameters", params)}),
      kModelFill, "filled,bold");
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    const auto& a = schema.arguments()[i];
    out += node_line(fmt::format("in{}", i), label(a.name(), {"input"}), kInputFill);
    out += fmt::format("  in{} -> model [label=\"{}\"];\n", i, escape(a.type()->str()));
  }
  out += node_line("out", label("output", {}), kOutputFill);
  out += fmt::format("  model -> out [label=\"{}\"];\n",
                     escape(schema.returns().empty() ? "" : schema.returns()[0].type()->str()));
  return out + "}\n";
}

std::string render_dot(const std::string& dot_text, const std::string& format) {
  const std::string dot = find_dot();
  if (dot.empty()) {
    throw IoError(
        "cannot draw the picture: Graphviz's `dot` program is not installed\n"
        "  fix: apt-get install graphviz, or write DOT text with -o OUT.dot");
  }
  Pipe in, out, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(out.fd, O_CLOEXEC) != 0 ||
      ::pipe2(err.fd, O_CLOEXEC) != 0) {
    throw IoError(std::string("cannot run dot: ") + std::strerror(errno));
  }
  const std::string flag = "-T" + format;
  const pid_t pid = ::fork();
  if (pid < 0) throw IoError(std::string("cannot run dot: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(in.fd[0], 0);
    ::dup2(out.fd[1], 1);
    ::dup2(err.fd[1], 2);
    ::execl(dot.c_str(), "dot", flag.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  in.close(0);
  out.close(1);
  err.close(1);
  // Write and read at once: dot may start printing before it has read all.
  std::string result, errors;
  size_t written = 0;
  auto old_pipe = ::signal(SIGPIPE, SIG_IGN);
  while (out.fd[0] >= 0 || err.fd[0] >= 0) {
    std::vector<pollfd> fds;
    if (in.fd[1] >= 0) fds.push_back({in.fd[1], POLLOUT, 0});
    if (out.fd[0] >= 0) fds.push_back({out.fd[0], POLLIN, 0});
    if (err.fd[0] >= 0) fds.push_back({err.fd[0], POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == in.fd[1]) {
        ssize_t n = ::write(p.fd, dot_text.data() + written, dot_text.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if (n < 0 || written == dot_text.size()) in.close(1);
        continue;
      }
      char buffer[65536];
      const ssize_t n = ::read(p.fd, buffer, sizeof buffer);
      Pipe& from = p.fd == out.fd[0] ? out : err;
      if (n > 0) {
        (p.fd == out.fd[0] ? result : errors).append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        from.close(0);  // end of output
      }
    }
  }
  ::signal(SIGPIPE, old_pipe);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw IoError(
        fmt::format("Graphviz's dot failed ({}): {}", dot, errors.substr(0, errors.find('\n'))));
  }
  return result;
}

std::string picture_dot(const fs::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".yaml" || ext == ".yml") {
    Spec s = load_spec(file);
    CheckReport report = check(s.graph);
    return graph_dot(s.graph, &report, file.filename().string());
  }
  const ArtifactMetadata meta = read_metadata(file);
  if (!meta.spec_yaml.empty()) return artifact_dot(file, meta.spec_yaml);
  return module_dot(load_module(file), file.stem().string());
}

void write_picture(const fs::path& file, const fs::path& out) {
  const std::string ext = out.extension().string();
  const std::string dot = picture_dot(file);
  write_file_atomically(out, ext == ".dot" ? dot : render_dot(dot, ext.substr(1)));
}

}  // namespace stitch
