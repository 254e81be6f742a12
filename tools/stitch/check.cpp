// stitch check SPEC.yaml: shapes only; prints the shape of every node.

#include <iostream>

#include "cli.h"

namespace stitch::cli {

void add_check(CLI::App& app) {
  auto* cmd = app.add_subcommand("check", "check shapes and print every node's shape");
  auto spec = std::make_shared<std::string>();
  cmd->add_option("spec", *spec, "the spec file (YAML)")->required();
  cmd->callback([spec] {
    Spec s = load_spec(*spec);
    std::cout << check(s.graph).table() << "ok: shapes fit\n";
  });
}

}  // namespace stitch::cli
