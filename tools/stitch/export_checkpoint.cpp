// stitch export-checkpoint CKPT.pt|RUN -o OUT.pt: the artifact of a training
// checkpoint (best.pt, last.pt, step_*.pt, or a run's out folder), built as
// `stitch train` builds model.pt.

#include <iostream>

#include "cli.h"

namespace stitch::cli {

void add_export_checkpoint(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export-checkpoint", "turn a training checkpoint into an artifact, as train's model.pt");
  auto checkpoint = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("checkpoint", *checkpoint,
                  "a checkpoint (RUN/checkpoints/best.pt, last.pt, step_*.pt), or a run's out "
                  "folder (its best.pt, else last.pt)")
      ->required();
  cmd->add_option("-o,--output", *out, "the artifact to write (.pt)")->required();
  cmd->callback([checkpoint, out] {
    save(model_from_checkpoint(*checkpoint), *out);
    std::cout << "wrote " << *out << "\n";
  });
}

}  // namespace stitch::cli
