// stitch compose SPEC.yaml -o OUT.pt: check, build and save one TorchScript file.

#include <iostream>

#include "cli.h"

namespace stitch::cli {

void add_compose(CLI::App& app) {
  auto* cmd = app.add_subcommand("compose", "check + build + save one TorchScript file");
  auto spec = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto optimize = std::make_shared<bool>(false);
  auto concurrent = std::make_shared<bool>(false);
  cmd->add_option("spec", *spec, "the spec file (YAML)")->required();
  cmd->add_option("-o,--output", *out, "the artifact to write (.pt)")->required();
  cmd->add_flag("--optimize", *optimize,
                "fold weights and optimize for inference (eval-only artifact)");
  cmd->add_flag("--concurrent", *concurrent,
                "run independent model calls at the same time (TorchScript fork/wait); "
                "measure first, see docs/compose.md");
  cmd->callback([spec, out, optimize, concurrent] {
    Spec s = load_spec(*spec);
    CheckReport report = check(s.graph);
    torch::jit::Module model = build(s.graph, report, BuildOptions().concurrent(*concurrent));
    if (*optimize) model = fold_weights(model);
    save(model, *out);
    std::cout << report.table() << "wrote " << *out << "\n";
  });
}

}  // namespace stitch::cli
