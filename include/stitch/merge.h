#pragma once
// Weight-space merges of models of one architecture, BatchNorm statistics
// recomputed on data, and greedy soups: `stitch merge` (docs/merge.md). A
// merge used inside a graph is a model entry instead: stitch::load_merge.

#include <torch/arg.h>
#include <torch/script.h>

#include <filesystem>
#include <string>
#include <vector>

#include "stitch/merge_options.h"

namespace stitch {

/// Loads `files` (and options.base()), checks that their parameters and
/// buffers have the same names, shapes and dtypes (ModelError naming the
/// first difference), and merges them. The module has the first file's
/// code and interface, and a stitch/manifest.json recording the method, its
/// options and every source's sha256. `summary`, if given, gets a line
/// saying what was merged.
[[nodiscard]] torch::jit::Module merge(const std::vector<std::filesystem::path>& files,
                                       const MergeOptions& options = {},
                                       std::string* summary = nullptr);

/// Sets every BatchNorm's running_mean and running_var to the mean, over
/// `data`'s batches of `batch` rows, of the batch statistics (what
/// torch.optim.swa_utils.update_bn computes), and num_batches_tracked to
/// the number of batches. `data` holds one tensor per argument of forward,
/// named as the argument (any name if there is one argument). A merged
/// module's manifest records the data file. A failure leaves the module as
/// it was. Throws stitch::Error when a BatchNorm cannot
/// update (a model traced in eval mode).
void recompute_batchnorm(torch::jit::Module& module, const std::filesystem::path& data,
                         int64_t batch = 64);

enum class SoupMetric { accuracy, loss };

///   stitch::greedy_soup(files, "val.pt", stitch::SoupOptions().metric(stitch::SoupMetric::loss))
struct SoupOptions {
  TORCH_ARG(SoupMetric, metric) = SoupMetric::accuracy;
  /// Recompute every candidate's BatchNorm statistics on this data first.
  TORCH_ARG(std::filesystem::path, recompute_bn);
  /// Rows per batch, for scoring and for recompute_bn.
  TORCH_ARG(int64_t, batch) = 64;
};

/// One model tried for the soup, best single model first.
struct SoupStep {
  std::string model;   // its file name
  double model_score;  // the model alone
  double soup_score;   // the soup with it (the first: the model alone)
  bool kept;
};

struct Soup {
  torch::jit::Module module;
  std::vector<SoupStep> steps;
  double score = 0;  // the soup's
  /// The steps as CSV: step,model,model_score,soup_score,kept.
  std::string csv() const;
  /// Writes csv() to `file` atomically (IoError).
  void write_csv(const std::filesystem::path& file) const;
  /// The steps as a table, and a line for the soup.
  std::string table(SoupMetric metric) const;
};

/// A greedy soup (Wortsman et al., 2022): the models scored on `data` (one
/// tensor per forward argument and int64 `labels`), sorted best first; each
/// is added to the soup (a uniform average) only if the soup then scores at
/// least as well. Never worse than the best single model.
[[nodiscard]] Soup greedy_soup(const std::vector<std::filesystem::path>& files,
                               const std::filesystem::path& data, const SoupOptions& options = {});

/// "accuracy" / "loss"; parse returns false for another name.
const char* soup_metric_name(SoupMetric metric);
bool parse_soup_metric(const std::string& name, SoupMetric& metric);

}  // namespace stitch
