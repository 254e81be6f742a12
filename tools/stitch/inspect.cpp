// stitch inspect MODEL.pt|SPEC.yaml [--input NAME=1x3x224x224 ...] [--depth K] [--json]
// stitch inspect MODEL.pt --archive [--json]

#include <fmt/format.h>
#include <stitch/artifact.h>
#include <stitch/bench.h>
#include <stitch/inspect.h>

#include <iostream>

#include "cli.h"

namespace stitch::cli {

namespace {

bool is_spec(const std::string& file) {
  auto ext = std::filesystem::path(file).extension().string();
  return ext == ".yaml" || ext == ".yml";
}

/// forward's tensor inputs from --input NAME=SHAPE (or one bare SHAPE):
/// random values, in the order forward declares them.
std::vector<c10::IValue> example_inputs(const torch::jit::Module& model,
                                        const std::vector<std::string>& args) {
  if (args.empty()) return {};
  const auto& schema = model.get_method("forward").function().getSchema();
  std::vector<std::string> names;
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    names.push_back(schema.arguments()[i].name());
  }
  std::vector<std::string> written, shapes;
  for (const auto& [name, shape] : named_inputs(args)) {
    written.push_back(name);
    shapes.push_back(shape);
  }
  const auto bound = bind_input_names("the model", names, written);
  std::map<std::string, std::vector<int64_t>> given;
  for (size_t k = 0; k < bound.size(); ++k) given[bound[k]] = parse_shape(shapes[k]);
  // Inputs up to the last one given; those left out must have defaults.
  std::vector<c10::IValue> inputs;
  for (size_t i = 0; i < names.size() && inputs.size() < given.size(); ++i) {
    auto it = given.find(names[i]);
    if (it == given.end()) {
      throw UsageError(
          fmt::format("missing input '{}': pass --input {}=SHAPE", names[i], names[i]));
    }
    inputs.emplace_back(torch::randn(it->second));
  }
  return inputs;
}

/// A spec's input sizes from --input NAME=SHAPE (or one bare SHAPE).
InputSizes input_sizes(const Graph& graph, const std::vector<std::string>& args) {
  std::vector<std::string> names;
  for (int id : graph.inputs()) names.push_back(graph.nodes()[id].name);
  std::vector<std::string> written, shapes;
  for (const auto& [name, shape] : named_inputs(args)) {
    written.push_back(name);
    shapes.push_back(shape);
  }
  const auto bound = bind_input_names("the spec", names, written);
  InputSizes sizes;
  for (size_t k = 0; k < bound.size(); ++k) sizes[bound[k]] = parse_shape(shapes[k]);
  return sizes;
}

}  // namespace

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect", "one row per submodule: path, type, output shape, parameters, training");
  auto file = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto depth = std::make_shared<int>(-1);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("model", *file, "a TorchScript file (.pt) or a spec (.yaml)")->required();
  cmd->add_option(
      "--input", *inputs,
      "NAME=SHAPE (1x3x224x224), or SHAPE with one input: show output shapes (for a spec: "
      "the sizes of its declared inputs, N=8 from x=8x10 against [N, 10])");
  cmd->add_option("--depth", *depth, "show submodules down to K levels (default: all)")
      ->check(at_least(0));
  auto archive = std::make_shared<bool>(false);
  auto* archive_flag = cmd->add_flag(
      "--archive", *archive,
      "read the file's zip entries (code, tensors) without running any of its code: for files "
      "you do not trust");
  cmd->add_flag("--json", *json, "print the same as JSON");
  cmd->get_option("--input")->excludes(archive_flag);
  cmd->get_option("--depth")->excludes(archive_flag);
  cmd->callback([=] {
    if (*archive) {
      if (is_spec(*file)) {
        throw UsageError(fmt::format(
            "--archive reads a TorchScript file, and {} is a spec; inspect it without --archive",
            *file));
      }
      const ArchiveReport report = inspect_archive(*file);
      if (report.code.empty() && !report.problem.empty()) {
        throw ModelError(fmt::format("{} is not a TorchScript archive: {}", *file, report.problem));
      }
      std::cout << (*json ? report.json() : report.table());
      return;
    }
    InspectReport report;
    if (is_spec(*file)) {
      Spec spec = load_spec(*file);
      report = inspect_graph(spec.graph, *depth, input_sizes(spec.graph, *inputs));
    } else {
      torch::jit::Module model = load_module(*file);
      // A stitch artifact declares its inputs: without --input, they are
      // made at their declared shapes (dynamic dims 1), as bench does.
      if (inputs->empty() && !declared_outputs(model).empty()) {
        try {
          std::vector<c10::IValue> values;
          for (auto& t : random_inputs(model, {})) values.emplace_back(std::move(t));
          report = inspect_module(model, values, *depth);
          report.note = "output shapes for the declared inputs, dynamic dims (N) at 1";
        } catch (const Error& e) {
          report = inspect_module(model, {}, *depth);
          report.note = fmt::format(
              "the declared inputs at N=1 did not run ({}); pass --input NAME=SHAPE to see "
              "output shapes",
              detail::first_line(e.what()));
        }
      } else {
        report = inspect_module(model, example_inputs(model, *inputs), *depth);
        if (inputs->empty()) report.note = "pass --input NAME=SHAPE to see output shapes";
      }
    }
    std::cout << (*json ? report.json() : report.table());
  });
}

}  // namespace stitch::cli
