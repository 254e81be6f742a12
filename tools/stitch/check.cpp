// stitch check SPEC.yaml [--json]: shapes only; prints the shape of every node.

#include <iostream>

#include "cli.h"

namespace stitch::cli {

void add_check(CLI::App& app) {
  auto* cmd = app.add_subcommand("check", "check shapes and print every node's shape");
  auto spec = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("spec", *spec, "the spec file (YAML)")->required();
  cmd->add_flag("--json", *json, "print the nodes as JSON, shapes as lists");
  cmd->callback([spec, json] {
    Spec s = load_spec(*spec);
    const CheckReport report = check(s.graph);
    std::cout << (*json ? report.json() : report.table() + "ok: shapes fit\n");
  });
}

}  // namespace stitch::cli
