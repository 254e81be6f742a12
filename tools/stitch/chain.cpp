// stitch chain A.pt B.pt [C.pt ...] --input 1x10 -o OUT.pt: y = C(B(A(x))).

#include "cli.h"

#include <fmt/format.h>

#include <iostream>
#include <set>

namespace stitch::cli {

namespace {

/// The graph y = ...(B(A(x))); the first dim of the input is the dynamic
/// batch N, so the artifact runs at any batch size.
Graph chain_graph(const std::vector<std::string>& files, const std::vector<int64_t>& dims) {
  Graph g;
  Shape shape;
  for (size_t i = 0; i < dims.size(); ++i) shape.push_back(i == 0 ? N : Dim(dims[i]));
  Value y = g.input("x", shape);
  std::set<std::string> names;
  for (const auto& file : files) {
    Model m = load(file);
    std::string name = m.spec().name;
    for (int k = 2; names.count(name) || name == "x" || name == "y"; ++k) {
      name = fmt::format("{}_{}", m.spec().name, k);
    }
    names.insert(name);
    y = m.name(name)(y);
  }
  g.set_name(y, "y");
  g.output("y", y);
  return g;
}

}  // namespace

void add_chain(CLI::App& app) {
  auto* cmd = app.add_subcommand("chain", "chain models: y = C(B(A(x)))");
  auto files = std::make_shared<std::vector<std::string>>();
  auto input = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("models", *files, "model files, first to last")->required();
  cmd->add_option("--input", *input, "input shape, like 1x10 (the first dim is the batch)")
      ->required();
  cmd->add_option("-o,--output", *out, "the artifact to write (.pt)")->required();
  cmd->callback([files, input, out] {
    auto named = split_named(*input);
    if (!named.name.empty() && named.name != "x") {
      throw UsageError("chain's input is named x; write --input 1x10 or --input x=1x10");
    }
    Graph g = chain_graph(*files, parse_shape(named.value));
    CheckReport report = check(g);
    save(build(g), *out);
    std::cout << report.table() << "wrote " << *out << "\n";
  });
}

}  // namespace stitch::cli
