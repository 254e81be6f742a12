// stitch chain A.pt B.pt [C.pt ...] --input 1x10 -o OUT.pt [--adapt]:
// y = C(B(A(x))), with adapters between models that do not fit.

#include <fmt/format.h>

#include <iostream>
#include <set>

#include "cli.h"

namespace stitch::cli {

namespace {

/// The graph y = ...(B(A(x))); the first dim of the input is the dynamic
/// batch N, so the artifact runs at any batch size. With `adapt`, each model
/// after the first is fed through adapt(prev, like=MODEL), which is nothing
/// where the shapes already fit.
Graph chain_graph(const std::vector<std::string>& files, const std::vector<int64_t>& dims,
                  bool adapt) {
  Graph g;
  Shape shape;
  for (size_t i = 0; i < dims.size(); ++i) shape.push_back(i == 0 ? N : Dim(dims[i]));
  Value y = g.input("x", shape);
  std::set<std::string> names;
  for (size_t i = 0; i < files.size(); ++i) {
    Model m = load(files[i]);
    // Named after its file, unless that name is taken: by another model,
    // the input or output, or a built-in op (mlp.pt is the model mlp_model).
    std::string base = m.spec().name;
    if (is_builtin_op(base)) base += "_model";
    std::string name = base;
    for (int k = 2; names.count(name) || name == "x" || name == "y"; ++k) {
      name = fmt::format("{}_{}", base, k);
    }
    names.insert(name);
    m.name(name);
    if (adapt && i > 0) y = stitch::adapt(y, m);
    y = m(y);
  }
  g.set_name(y, "y");
  g.output("y", y);
  return g;
}

/// Whether --adapt would make the chain fit (it cannot when the input does
/// not fit the first model, or a model's output is not one tensor).
bool adapting_fits(const std::vector<std::string>& files, const std::vector<int64_t>& dims) {
  try {
    (void)check(chain_graph(files, dims, /*adapt=*/true));
    return true;
  } catch (const Error&) {
    return false;
  }
}

/// "adapter before B: adapt: [N, 512, 1, 1] -> [N, 512] by flatten", one line
/// per adapter.
std::string adapter_lines(const Graph& g, const CheckReport& report) {
  std::string out;
  for (size_t id = 0; id + 1 < g.nodes().size(); ++id) {
    const Node& n = g.nodes()[id];
    if (n.kind != Node::Kind::Op || n.op != "adapt") continue;
    out += fmt::format("adapter before {}: {}\n", n.kwarg("like")->s, report.nodes[id].note);
  }
  return out;
}

}  // namespace

void add_chain(CLI::App& app) {
  auto* cmd = app.add_subcommand("chain", "chain models: y = C(B(A(x)))");
  auto files = std::make_shared<std::vector<std::string>>();
  auto input = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto adapt = std::make_shared<bool>(false);
  cmd->add_option("models", *files, "model files, first to last")->required();
  cmd->add_option("--input", *input, "input shape, like 1x10 (the first dim is the batch)")
      ->required();
  cmd->add_option("-o,--output", *out, "the artifact to write (.pt)")->required();
  cmd->add_flag("--adapt", *adapt,
                "insert the smallest adapter between models whose shapes do not fit");
  cmd->callback([files, input, out, adapt] {
    auto named = split_named(*input);
    if (!named.name.empty() && named.name != "x") {
      throw UsageError("chain's input is named x; write --input 1x10 or --input x=1x10");
    }
    const std::vector<int64_t> dims = parse_shape(named.value);
    Graph g = chain_graph(*files, dims, *adapt);
    CheckReport report;
    try {
      report = check(g);
    } catch (const ShapeError& e) {
      if (*adapt || !adapting_fits(*files, dims)) throw;
      // The message's fix is spec text; on the command line --adapt does it.
      throw ShapeError(std::string(e.what()) +
                       "\n  fix: add --adapt to insert the smallest adapter between "
                       "the models");
    }
    save(build(g, report), *out);
    std::cout << report.table() << adapter_lines(g, report) << "wrote " << *out << "\n";
  });
}

}  // namespace stitch::cli
