// stitch run MODEL.pt --input NAME=FILE ... -o OUT_FILE [--batch B]

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "progress_line.h"

namespace stitch::cli {

namespace {

/// The tensor for argument `name` from a file: its only tensor, or the
/// entry keyed by `name`.
torch::Tensor pick(const TensorMap& tensors, const std::string& name, const std::string& file) {
  if (tensors.size() == 1) return tensors.begin()->second;
  auto it = tensors.find(name);
  if (it != tensors.end()) return it->second;
  std::string keys;
  for (const auto& [k, v] : tensors) keys += (keys.empty() ? "" : ", ") + k;
  throw Error(
      fmt::format("{} holds several tensors ({}) and none is named '{}'", file, keys, name));
}

std::vector<torch::Tensor> gather_inputs(const torch::jit::Module& model,
                                         const std::vector<std::string>& args) {
  const auto& schema = model.get_method("forward").function().getSchema();
  std::vector<std::string> names;
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    names.push_back(schema.arguments()[i].name());
  }
  std::vector<std::string> written, files;
  for (const auto& [name, file] : named_inputs(args)) {
    written.push_back(name);
    files.push_back(file);
  }
  const auto bound = bind_input_names("the model", names, written);
  std::map<std::string, torch::Tensor> given;
  for (size_t k = 0; k < bound.size(); ++k) {
    const std::string& name = bound[k];
    const std::string& file = files[k];
    given[name] = pick(read_tensors(file), name, file);
    check_finite(given[name], fmt::format("input '{}' ({})", name, file));
  }
  // An input with a default (wav2vec2's lengths=None) may be left out when
  // no later input is given: forward then takes its default.
  size_t count = names.size();
  while (count > 0 && !given.count(names[count - 1]) &&
         schema.arguments()[count].default_value().has_value()) {
    --count;
  }
  std::vector<torch::Tensor> inputs;
  for (size_t i = 0; i < count; ++i) {
    auto it = given.find(names[i]);
    if (it == given.end()) {
      const bool defaulted = schema.arguments()[i + 1].default_value().has_value();
      throw Error(fmt::format("missing input '{}'{}: pass --input {}=FILE", names[i],
                              defaulted ? " (it has a default, but a later input is given)" : "",
                              names[i]));
    }
    inputs.push_back(it->second);
  }
  return inputs;
}

/// --batch splits every input along dim 0: they must all have it, equally long.
void check_batchable(const std::vector<torch::Tensor>& inputs, const torch::jit::Module& model) {
  const auto& args = model.get_method("forward").function().getSchema().arguments();
  auto name = [&](size_t i) {
    return i + 1 < args.size() ? args[i + 1].name() : std::to_string(i);
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].dim() == 0) {
      throw Error(
          fmt::format("--batch splits the inputs along dim 0, but input '{}' is a "
                      "single number (0-d)\n  fix: run without --batch",
                      name(i)));
    }
    if (inputs[i].size(0) != inputs[0].size(0)) {
      throw Error(
          fmt::format("--batch splits the inputs along dim 0, but input '{}' has {} "
                      "samples and input '{}' has {}",
                      name(0), inputs[0].size(0), name(i), inputs[i].size(0)));
    }
  }
}

/// Output values as named tensors: a tensor keyed by `single_name`, a dict
/// by its keys, a tuple by position (without its Nones).
TensorMap as_tensor_map(const c10::IValue& out, const std::string& single_name) {
  TensorMap result;
  if (out.isTensor()) {
    result[single_name] = out.toTensor();
  } else if (out.isGenericDict()) {
    for (const auto& item : out.toGenericDict()) {
      result[item.key().toStringRef()] = item.value().toTensor();
    }
  } else if (out.isTuple()) {
    const auto& items = out.toTupleRef().elements();
    // A None (wav2vec2's lengths when none were given) is left out; the
    // others keep their positions as keys.
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].isTensor()) {
        result[std::to_string(i)] = items[i].toTensor();
      } else if (!items[i].isNone()) {
        throw Error(fmt::format("the model returns a tuple whose item {} is {}, not a tensor", i,
                                items[i].tagKind()));
      }
    }
  } else {
    throw Error("the model returns " + out.tagKind() + ", not tensors");
  }
  return result;
}

/// Batches' outputs are joined along dim 0: the first batch shows whether
/// they can be, before the others run.
void check_joinable(const std::string& name, const torch::Tensor& output, int64_t rows) {
  if (output.dim() > 0 && output.size(0) == rows) return;
  throw Error(fmt::format(
      "--batch joins the outputs along dim 0, but output '{}' {}\n"
      "  fix: run without --batch",
      name,
      output.dim() == 0
          ? std::string("is a single number (0-d), not one row per sample")
          : fmt::format("has {} rows for a batch of {} samples", output.size(0), rows)));
}

TensorMap run_batches(torch::jit::Module& model, const std::vector<torch::Tensor>& inputs,
                      int64_t batch, const std::string& single_name) {
  torch::NoGradGuard no_grad;
  const int64_t total = inputs.empty() ? 0 : inputs[0].size(0);
  if (batch <= 0 || batch >= total) {
    return as_tensor_map(model.forward({inputs.begin(), inputs.end()}), single_name);
  }
  std::map<std::string, std::vector<torch::Tensor>> parts;
  const int64_t batches = (total + batch - 1) / batch;
  const int64_t every = std::max<int64_t>(1, batches / 10);  // plain lines: about ten
  ProgressLine progress;
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t start = b * batch, rows = std::min(batch, total - start);
    std::vector<c10::IValue> slice;
    for (const auto& t : inputs) slice.emplace_back(t.narrow(0, start, rows));
    for (auto& [k, v] : as_tensor_map(model.forward(slice), single_name)) {
      if (b == 0) check_joinable(k, v, rows);
      parts[k].push_back(v);
    }
    const int64_t done = b + 1;
    progress.show(fmt::format("batch {}/{} ({} of {} samples)", done, batches,
                              std::min(done * batch, total), total),
                  done % every == 0 || done == batches);
  }
  TensorMap result;
  for (auto& [k, v] : parts) result[k] = torch::cat(v, 0);
  return result;
}

}  // namespace

void add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "run a model on tensor files");
  auto model_file = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto batch = std::make_shared<int64_t>(0);
  cmd->add_option("model", *model_file, "the model (.pt)")->required();
  cmd->add_option("--input", *inputs,
                  fmt::format("NAME=FILE ({}), or FILE", stitch::tensor_file_types()))
      ->required();
  cmd->add_option("-o,--output", *out,
                  fmt::format("where to write the outputs ({})", stitch::tensor_file_types()))
      ->required();
  cmd->add_option("--batch", *batch, "run in batches of B samples")->check(at_least(1));
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json,
                "print what was written as JSON: the file, and each output's "
                "name, shape (a list) and dtype");
  cmd->callback([=] {
    torch::jit::Module model = load_module(*model_file);
    model.eval();
    auto tensors = gather_inputs(model, *inputs);
    check_inputs(model, tensors);  // a stitch artifact's declared shapes and dtypes
    if (*batch > 0) check_batchable(tensors, model);
    // One tensor out: keyed by the artifact's output name (chain's y), else "output".
    const auto declared = declared_outputs(model);
    const std::string single_name = declared.size() == 1 ? declared[0] : "output";
    TensorMap result = with_context(
        "running " + *model_file, [&] { return run_batches(model, tensors, *batch, single_name); });
    write_tensors(*out, result);
    if (*json) {
      nlohmann::json outputs = nlohmann::json::array();
      for (const auto& [k, v] : result) {
        outputs.push_back(
            {{"name", k}, {"shape", v.sizes().vec()}, {"dtype", dtype_str(v.scalar_type())}});
      }
      const nlohmann::json j = {{"file", *out}, {"outputs", outputs}};
      std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return;
    }
    for (const auto& [k, v] : result) {
      std::cout << k << ": " << dtype_str(v.scalar_type()) << v.sizes() << "\n";
    }
    std::cout << "wrote " << *out << "\n";
  });
}

}  // namespace stitch::cli
