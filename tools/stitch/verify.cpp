// stitch verify OUT.pt SPEC.yaml [--json]: the artifact computes what its parts do.

#include <stitch/verify.h>

#include <iostream>

#include "cli.h"

namespace stitch::cli {

void add_verify(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("verify", "check that an artifact equals running its parts, numerically");
  auto artifact = std::make_shared<std::string>();
  auto spec = std::make_shared<std::string>();
  auto options = std::make_shared<VerifyOptions>();
  cmd->add_option("artifact", *artifact, "the artifact (.pt) made by compose")->required();
  cmd->add_option("spec", *spec, "the spec it was made from (YAML)")->required();
  cmd->add_option("--atol", options->atol(), "absolute tolerance (default 1e-5)");
  cmd->add_option("--rtol", options->rtol(), "relative tolerance (default 1e-4)");
  cmd->add_option("--size", options->dynamic_size(),
                  "size of dynamic dims (N...) in the random inputs (default 2)")
      ->check(at_least(1));
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print the comparison as JSON");
  cmd->callback([artifact, spec, options, json] {
    VerifyReport report = verify(*artifact, *spec, *options);
    if (*json) {
      std::cout << report.json();
    } else {
      std::cout << report.table() << "ok: " << *artifact << " matches its parts\n";
    }
  });
}

}  // namespace stitch::cli
