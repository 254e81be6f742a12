// stitch graph MODEL.pt|SPEC.yaml -o OUT.svg|OUT.dot: a picture of the
// network (SVG, PNG or PDF through Graphviz's dot; DOT as text).

#include <stitch/graph_picture.h>

#include <iostream>

#include "cli.h"

namespace stitch::cli {

void add_graph(CLI::App& app) {
  auto* cmd = app.add_subcommand("graph", "draw a spec, an artifact or a model");
  auto file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("file", *file, "a spec (.yaml), an artifact or a TorchScript model (.pt)")
      ->required();
  cmd->add_option("-o,--output", *out, "the picture to write: .svg, .png, .pdf or .dot")
      ->required();
  cmd->callback([file, out] {
    const std::string ext = std::filesystem::path(*out).extension().string();
    if (ext != ".svg" && ext != ".dot" && ext != ".png" && ext != ".pdf") {
      throw UsageError("graph writes .svg, .png, .pdf or .dot; -o " + *out + " has none");
    }
    write_picture(*file, *out);
    std::cout << "wrote " << *out << "\n";
  });
}

}  // namespace stitch::cli
