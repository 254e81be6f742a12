#include "merge/model_data.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "stitch/error.h"
#include "stitch/shape.h"
#include "stitch/tensor_io.h"

namespace stitch {

std::vector<c10::IValue> ModelData::batch(int64_t start, int64_t count) const {
  std::vector<c10::IValue> out;
  for (const auto& t : inputs) out.emplace_back(t.narrow(0, start, count));
  return out;
}

ModelData read_model_data(const torch::jit::Module& module, const std::filesystem::path& file,
                          bool with_labels) {
  TensorMap tensors = read_tensors(file);
  std::vector<std::string> keys;
  for (const auto& [key, t] : tensors) keys.push_back(key);
  auto missing = [&](const std::string& what) {
    return IoError::at(file, fmt::format("{}; it holds {}", what, fmt::join(keys, ", ")));
  };
  const auto& schema = module.get_method("forward").function().getSchema();
  std::vector<std::string> args;
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    args.push_back(schema.arguments()[i].name());
  }
  ModelData data;
  for (const auto& arg : args) {
    auto it = tensors.find(arg);
    if (it == tensors.end() && args.size() == 1) {
      std::vector<std::string> others;
      for (const auto& key : keys) {
        if (key != "labels") others.push_back(key);
      }
      if (others.size() == 1) it = tensors.find(others[0]);
    }
    if (it == tensors.end()) {
      throw missing(fmt::format("no tensor '{}' for the model's argument {} (forward takes {})",
                                arg, arg, fmt::join(args, ", ")));
    }
    data.inputs.push_back(it->second);
  }
  if (with_labels) {
    auto it = tensors.find("labels");
    if (it == tensors.end()) throw missing("no tensor 'labels' (int64 class indices) to score on");
    if (it->second.dim() != 1 || it->second.is_floating_point()) {
      throw IoError::at(file, fmt::format("'labels' must be int64 class indices of shape [N], "
                                          "got {}[{}]",
                                          dtype_str(it->second.scalar_type()),
                                          fmt::join(it->second.sizes(), ", ")));
    }
    data.labels = it->second.to(torch::kLong);
  }
  for (const auto& t : data.inputs) {
    if (t.dim() == 0)
      throw IoError::at(file, "inputs must have a first dim of rows, got a 0-d tensor");
  }
  data.rows = data.inputs.empty() ? 0 : data.inputs[0].size(0);
  for (const auto& t : data.inputs) {
    if (t.size(0) != data.rows) {
      throw IoError::at(file, fmt::format("the inputs have {} and {} rows: they must agree",
                                          data.rows, t.size(0)));
    }
  }
  if (data.labels.defined() && data.labels.size(0) != data.rows) {
    throw IoError::at(
        file, fmt::format("'labels' has {} rows, the inputs {}", data.labels.size(0), data.rows));
  }
  if (data.rows == 0) throw IoError::at(file, "holds no rows");
  return data;
}

}  // namespace stitch
