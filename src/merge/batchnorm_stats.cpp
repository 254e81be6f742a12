// BatchNorm statistics recomputed on data, as torch.optim.swa_utils.update_bn
// computes them: the plain mean over batches of each batch's mean and
// unbiased variance.
//
// A TorchScript BatchNorm updates running = (1 - m) running + m batch_stat,
// with its momentum m compiled into its code. So each batch runs with the
// statistics set to zero, which leaves m * batch_stat; m itself is measured
// once, on the first batch, by running it again from ones: (1 - m) + m *
// batch_stat.

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/assert.h"
#include "load/component.h"
#include "merge/merge_files.h"
#include "merge/model_data.h"
#include "stitch/merge.h"
#include "util/atomic_file.h"

namespace stitch {

namespace {

struct BatchNormStats {
  std::string name;
  torch::Tensor mean, var, batches;  // the module's buffers (batches may be undefined)
  torch::Tensor momentum;            // per channel, measured
  torch::Tensor mean_sum, var_sum;
};

std::vector<BatchNormStats> batchnorms(const torch::jit::Module& module) {
  std::vector<BatchNormStats> out;
  for (const auto& m : module.named_modules()) {
    BatchNormStats s;
    s.name = m.name.empty() ? "(the model)" : m.name;
    for (const auto& b : m.value.named_buffers(false)) {
      if (b.name == "running_mean") s.mean = b.value;
      if (b.name == "running_var") s.var = b.value;
      if (b.name == "num_batches_tracked") s.batches = b.value;
    }
    if (s.mean.defined() && s.var.defined()) out.push_back(std::move(s));
  }
  return out;
}

void reset(std::vector<BatchNormStats>& bns, double value) {
  for (auto& bn : bns) {
    bn.mean.fill_(value);
    bn.var.fill_(value);
    if (bn.batches.defined()) bn.batches.zero_();
  }
}

/// Runs every batch in training mode and sums each BatchNorm's batch
/// statistics into mean_sum and var_sum.
void accumulate(torch::jit::Module& module, std::vector<BatchNormStats>& bns, const ModelData& data,
                int64_t batch, const std::filesystem::path& data_file) {
  module.train(true);
  auto forward = [&](int64_t start, int64_t count) {
    with_context<ModelError>(
        "--recompute-bn: running the model on " + data_file.filename().string(),
        [&] { return module.forward(data.batch(start, count)); });
  };
  for (int64_t start = 0; start < data.rows; start += batch) {
    const int64_t count = std::min(batch, data.rows - start);
    if (start == 0) {
      // m from (1 - m) + m s - m s.
      reset(bns, 1.0);
      forward(start, count);
      std::vector<torch::Tensor> from_one;
      for (auto& bn : bns) from_one.push_back(bn.mean.clone());
      reset(bns, 0.0);
      forward(start, count);
      for (size_t i = 0; i < bns.size(); ++i) {
        bns[i].momentum = 1.0 - (from_one[i] - bns[i].mean);
        if (bns[i].momentum.abs().min().item<double>() < 1e-6) {
          throw ModelError(fmt::format(
              "--recompute-bn: BatchNorm {} does not update its statistics in training mode\n"
              "  fix: a model traced in eval mode has its BatchNorms frozen into the trace; "
              "export it with torch.jit.script, or trace it in training mode",
              bns[i].name));
        }
      }
    } else {
      reset(bns, 0.0);
      forward(start, count);
    }
    for (auto& bn : bns) {
      const torch::Tensor mean = bn.mean / bn.momentum, var = bn.var / bn.momentum;
      bn.mean_sum = bn.mean_sum.defined() ? bn.mean_sum + mean : mean;
      bn.var_sum = bn.var_sum.defined() ? bn.var_sum + var : var;
    }
  }
}

}  // namespace

void recompute_batchnorm(torch::jit::Module& module, const std::filesystem::path& data_file,
                         int64_t batch) {
  STITCH_CHECK(batch >= 1, Error, "recompute_batchnorm: batch must be >= 1");
  std::vector<BatchNormStats> bns = batchnorms(module);
  if (bns.empty()) {
    throw ModelError(
        "--recompute-bn: the model has no BatchNorm layer (no running_mean and "
        "running_var buffers) to recompute");
  }
  const ModelData data = read_model_data(module, data_file, /*with_labels=*/false);
  const bool was_training = module.is_training();
  torch::NoGradGuard no_grad;
  // A failure (a model that cannot run on the data) leaves the module as it
  // was: its mode and its statistics.
  std::vector<torch::Tensor> saved;
  for (const auto& bn : bns) {
    for (const auto& t : {bn.mean, bn.var, bn.batches})
      saved.push_back(t.defined() ? t.clone() : t);
  }
  auto restore = [&] {
    size_t i = 0;
    for (auto& bn : bns) {
      for (auto* t : {&bn.mean, &bn.var, &bn.batches}) {
        if (t->defined()) t->copy_(saved[i]);
        ++i;
      }
    }
    module.train(was_training);
  };
  try {
    accumulate(module, bns, data, batch, data_file);
  } catch (...) {
    restore();
    throw;
  }
  module.train(was_training);
  const int64_t batches = (data.rows + batch - 1) / batch;
  for (auto& bn : bns) {
    bn.mean.copy_(bn.mean_sum / static_cast<double>(batches));
    bn.var.copy_(bn.var_sum / static_cast<double>(batches));
    if (bn.batches.defined()) bn.batches.fill_(batches);
  }
  if (!has_merge_manifest(module)) return;
  add_to_merge_manifest(module, "recompute_bn",
                        {{"file", data_file.filename().string()},
                         {"sha256", sha256_hex(read_file(data_file))},
                         {"batch", batch},
                         {"batches", batches}});
}

}  // namespace stitch
