// stitch bench MODEL.pt|SPEC.yaml [--input NAME=SHAPE ...] [--runs N] [--warmup W]
//              [--rounds R] [--compare-python] [--json]

#include <fmt/format.h>
#include <stitch/bench.h>

#include <iostream>

#include "cli.h"
#include "progress_line.h"

namespace stitch::cli {

namespace {

bool is_spec(const std::filesystem::path& file) {
  const auto ext = file.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

/// "round 2/4: stitch 10/12 runs, median 3.2 ms; python ...".
std::string round_text(const BenchProgress& p) {
  std::vector<std::string> sides;
  for (const auto& s : p.sides) {
    sides.push_back(fmt::format("{} {}/{} runs, median {}", s.side, s.runs_done, s.runs,
                                s.runs_done ? fmt::format("{:.3g} ms", s.median_ms) : "-"));
  }
  return fmt::format("round {}/{}: {}", p.round, p.rounds, fmt::join(sides, "; "));
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "time a model: median and spread of N runs, samples/s, peak memory");
  auto file = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto options = std::make_shared<BenchOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("model", *file, "a TorchScript file (.pt) or a spec (.yaml)")->required();
  cmd->add_option("--input", *inputs,
                  "NAME=SHAPE (1x3x224x224), or SHAPE with one input; a stitch artifact or "
                  "spec defaults to its declared shapes with N=1");
  cmd->add_option("--runs", options->runs(), "timed runs (on each side)")->capture_default_str();
  cmd->add_option("--warmup", options->warmup(), "untimed runs first (on each side)")
      ->capture_default_str();
  cmd->add_option("--rounds", options->rounds(),
                  "the timed runs come in R rounds; sides take turns round by round")
      ->capture_default_str();
  cmd->add_flag("--compare-python", options->compare_python(),
                "also time the same model in /usr/bin/python3 (torch.jit.load, and a stitch "
                "artifact's forward as plain Python), rounds interleaved");
  cmd->add_flag("--json", *json, "print the same numbers as JSON");
  cmd->callback([=] {
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const auto& [name, shape] : named_inputs(*inputs)) shapes[name] = parse_shape(shape);
    torch::jit::Module model;
    BenchOptions run_options = *options;
    if (is_spec(*file)) {
      model = build(load_spec(*file).graph);
    } else {
      model = load_module(*file);
      run_options.model_file(std::filesystem::absolute(*file));
    }
    const auto tensors = random_inputs(model, shapes);
    BenchReport report = [&] {
      ProgressLine progress;  // cleared before the table is printed
      run_options.on_progress(
          [&progress](const BenchProgress& p) { progress.show(round_text(p), p.round_done); });
      return bench(model, tensors, run_options);
    }();
    report.model = *file;
    std::cout << (*json ? report.json() : report.table());
  });
}

}  // namespace stitch::cli
