// Training data: one tensor file, `feed` from spec names to data keys,
// checks before anything trains, and the order of samples in an epoch.

#include <fmt/format.h>

#include <sstream>

#include "stitch/shape.h"
#include "train/train_internal.h"

namespace stitch::train_detail {

namespace {

std::string keys_of(const TensorMap& data) {
  std::string out;
  for (const auto& [k, v] : data) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::string key_for(const TrainConfig& config, const std::string& name) {
  auto it = config.feed.find(name);
  return it == config.feed.end() ? name : it->second;
}

const torch::Tensor& lookup(const TensorMap& data, const TrainConfig& config,
                            const std::string& name, const char* what) {
  const std::string key = key_for(config, name);
  auto it = data.find(key);
  if (it != data.end()) return it->second;
  throw IoError(
      fmt::format("{}: no tensor '{}' for {} '{}'\n"
                  "  the file holds: {}\n"
                  "  fix: map it in train.feed, like feed: {{{}: KEY}}",
                  config.data.string(), key, what, name, keys_of(data), name));
}

std::string sizes_str(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

/// The data must fit the declared input: same rank, same static sizes.
void check_input_shape(const Node& input, const torch::Tensor& t, const std::string& key,
                       const TrainConfig& config) {
  bool fits = t.dim() == static_cast<int64_t>(input.shape.size());
  for (size_t d = 1; fits && d < input.shape.size(); ++d) {
    if (input.shape[d].is_static() && input.shape[d].size() != t.size(d)) fits = false;
  }
  if (!fits) {
    throw IoError(fmt::format("{}: '{}' is {}{}, but input '{}' is declared {}",
                              config.data.string(), key, dtype_str(t.scalar_type()), sizes_str(t),
                              input.name, tensor_type_str(input.dtype, input.shape)));
  }
}

}  // namespace

Dataset load_dataset(const TrainConfig& config, const Graph& graph) {
  const TensorMap data = read_tensors(config.data);
  Dataset ds;
  std::string first_key;
  auto add = [&](const std::string& name, torch::Tensor t) {
    const std::string key = key_for(config, name);
    if (t.dim() == 0) {
      throw IoError(
          fmt::format("{}: '{}' is a scalar; training data needs a first "
                      "(sample) dimension",
                      config.data.string(), key));
    }
    if (ds.tensors.empty()) {
      ds.size = t.size(0);
      first_key = key;
    } else if (t.size(0) != ds.size) {
      throw IoError(
          fmt::format("{}: '{}' has {} samples but '{}' has {}; every fed tensor needs the same "
                      "first dimension",
                      config.data.string(), key, t.size(0), first_key, ds.size));
    }
    check_finite(t, fmt::format("{}: '{}'", config.data.string(), key));
    ds.tensors[name] = t.contiguous();
  };
  for (int id : graph.inputs()) {
    const Node& input = graph.nodes()[id];
    const auto& t = lookup(data, config, input.name, "input");
    check_input_shape(input, t, key_for(config, input.name), config);
    ds.inputs.push_back(input.name);
    add(input.name, t.to(input.dtype));
  }
  for (const auto& name : config.targets(graph)) {
    const auto& t = lookup(data, config, name, "loss target");
    ds.targets.push_back(name);
    add(name, t.to(target_dtype(config.loss, name, t)));
  }
  const int64_t val = static_cast<int64_t>(ds.size * config.val_split);
  ds.train_size = ds.size - val;
  if (ds.train_size <= 0) {
    throw IoError(fmt::format("{}: {} samples leave none to train on with val_split {}",
                              config.data.string(), ds.size, config.val_split));
  }
  return ds;
}

torch::Tensor epoch_order(const TrainConfig& config, int64_t epoch, int64_t n) {
  if (!config.shuffle) return torch::arange(n, torch::kLong);
  // Seeded by (seed, epoch) rather than by a running generator, so that a
  // resumed run shuffles exactly as an uninterrupted one.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(config.seed * 1000003ULL +
                                                      static_cast<uint64_t>(epoch) + 1);
  return torch::randperm(n, gen, torch::kLong);
}

Named take(const Dataset& data, const torch::Tensor& index) {
  Named out;
  for (const auto& [name, t] : data.tensors) out[name] = t.index_select(0, index);
  return out;
}

}  // namespace stitch::train_detail
