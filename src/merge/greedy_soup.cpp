// Greedy soups (Wortsman et al., 2022, Algorithm 1): ingredients sorted by
// their own held-out score; each joins the soup only if the uniform average
// then scores at least as well.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "artifact/metadata.h"
#include "core/assert.h"
#include "load/component.h"
#include "load/merge_weights.h"
#include "merge/merge_files.h"
#include "merge/model_data.h"
#include "stitch/merge.h"
#include "util/atomic_file.h"

namespace stitch {

namespace {

/// Accuracy (higher is better) or mean cross-entropy (lower is better) of
/// the module on the data, in eval mode without gradients.
double score(torch::jit::Module& module, const ModelData& data, SoupMetric metric, int64_t batch,
             const std::string& label) {
  torch::NoGradGuard no_grad;
  module.eval();
  double total = 0;
  for (int64_t start = 0; start < data.rows; start += batch) {
    const int64_t count = std::min(batch, data.rows - start);
    const c10::IValue out =
        with_context("scoring " + label, [&] { return module.forward(data.batch(start, count)); });
    if (!out.isTensor() || out.toTensor().dim() != 2 || out.toTensor().size(0) != count) {
      throw ModelError(
          fmt::format("{}: a soup is scored on forward's logits, a [N, classes] "
                      "tensor; the model returns {}",
                      label, out.isTensor() ? "a tensor of another shape" : out.type()->str()));
    }
    const torch::Tensor logits = out.toTensor().to(torch::kFloat);
    const torch::Tensor labels = data.labels.narrow(0, start, count);
    if (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= logits.size(1)) {
      throw Error(
          fmt::format("labels must be class indices from 0 to {} (the model has {} "
                      "classes)",
                      logits.size(1) - 1, logits.size(1)));
    }
    if (metric == SoupMetric::accuracy) {
      total += logits.argmax(-1).eq(labels).sum().item<double>();
    } else {
      // F.cross_entropy with reduction="sum".
      total -= torch::log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).sum().item<double>();
    }
  }
  return total / static_cast<double>(data.rows);
}

bool at_least_as_good(double a, double b, SoupMetric metric) {
  return metric == SoupMetric::accuracy ? a >= b : a <= b;
}

}  // namespace

const char* soup_metric_name(SoupMetric metric) {
  return metric == SoupMetric::accuracy ? "accuracy" : "loss";
}

bool parse_soup_metric(const std::string& name, SoupMetric& metric) {
  if (name == "accuracy")
    metric = SoupMetric::accuracy;
  else if (name == "loss")
    metric = SoupMetric::loss;
  else
    return false;
  return true;
}

std::string Soup::csv() const {
  std::string out = "step,model,model_score,soup_score,kept\n";
  for (size_t i = 0; i < steps.size(); ++i) {
    out += fmt::format("{},{},{:.9g},{:.9g},{}\n", i, steps[i].model, steps[i].model_score,
                       steps[i].soup_score, steps[i].kept ? "true" : "false");
  }
  return out;
}

void Soup::write_csv(const std::filesystem::path& file) const {
  write_file_atomically(file, csv());
}

std::string Soup::table(SoupMetric metric) const {
  size_t width = 5;
  for (const auto& s : steps) width = std::max(width, s.model.size());
  std::string out =
      fmt::format("{:<{}}  {:<9} {:<9} step\n", "model", width, soup_metric_name(metric), "soup");
  std::vector<std::string> kept;
  double soup = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const SoupStep& s = steps[i];
    std::string step = i == 0 ? "start (best single model)"
                       : s.kept
                           ? "kept"
                           : fmt::format("dropped (soup would be {:.4f}, not as good as {:.4f})",
                                         s.soup_score, soup);
    if (s.kept) {
      kept.push_back(s.model);
      soup = s.soup_score;
    }
    out += fmt::format("{:<{}}  {:<9.4f} {:<9.4f} {}\n", s.model, width, s.model_score,
                       s.kept ? s.soup_score : soup, step);
  }
  out +=
      fmt::format("soup of {} model{} ({}): {} {:.4f}\n", kept.size(), kept.size() == 1 ? "" : "s",
                  fmt::join(kept, ", "), soup_metric_name(metric), score);
  return out;
}

Soup greedy_soup(const std::vector<std::filesystem::path>& files,
                 const std::filesystem::path& data_file, const SoupOptions& options) {
  if (files.empty()) throw Error("a greedy soup needs at least one model");
  STITCH_CHECK(options.batch() >= 1, Error, "greedy_soup: batch must be >= 1");
  const MergeOptions uniform;  // linear, 1/n each
  std::vector<MergeSource> models;
  std::vector<std::string> sha256;
  for (const auto& file : files) {
    ModelSpec spec;
    spec.name = file.filename().string();
    spec.file = file;
    Component c = load_component(spec);
    models.push_back({c.module, spec.name});
    sha256.push_back(c.sha256);
  }
  check_same_state(models, nullptr);
  const ModelData data = read_model_data(models[0].module, data_file, true);
  // With --recompute-bn every module is scored with its statistics
  // recomputed, on a copy: the sources stay as read, for the averages.
  auto prepared = [&](torch::jit::Module m) {
    if (!options.recompute_bn().empty()) {
      recompute_batchnorm(m, options.recompute_bn(), options.batch());
    }
    return m;
  };
  auto rate = [&](torch::jit::Module& m, const std::string& label) {
    return score(m, data, options.metric(), options.batch(), label);
  };
  std::vector<torch::jit::Module> alone;
  std::vector<double> own;
  for (const auto& m : models) {
    alone.push_back(options.recompute_bn().empty() ? m.module : prepared(m.module.deepcopy()));
    own.push_back(rate(alone.back(), m.label));
  }
  // Best first; a NaN score (a model whose loss overflows) last.
  std::vector<size_t> order(files.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (std::isnan(own[a]) || std::isnan(own[b])) return !std::isnan(own[a]) && std::isnan(own[b]);
    return own[a] != own[b] && at_least_as_good(own[a], own[b], options.metric());
  });
  Soup soup;
  std::vector<MergeSource> ingredients = {models[order[0]]};
  std::vector<std::filesystem::path> kept_files = {files[order[0]]};
  std::vector<std::string> kept_sha = {sha256[order[0]]};
  // The soup of one is that model, as it was scored (a copy: the result
  // gets a manifest of its own).
  soup.module = alone[order[0]].deepcopy();
  soup.score = own[order[0]];
  soup.steps.push_back({models[order[0]].label, own[order[0]], own[order[0]], true});
  for (size_t k = 1; k < order.size(); ++k) {
    const MergeSource& next = models[order[k]];
    std::vector<MergeSource> candidate = ingredients;
    candidate.push_back(next);
    torch::jit::Module m = prepared(merge_weights(candidate, nullptr, uniform));
    const double s = rate(m, "the soup with " + next.label);
    const bool keep = at_least_as_good(s, soup.score, options.metric());
    soup.steps.push_back({next.label, own[order[k]], s, keep});
    if (keep) {
      ingredients = candidate;
      kept_files.push_back(files[order[k]]);
      kept_sha.push_back(sha256[order[k]]);
      soup.module = m;
      soup.score = s;
    }
  }
  nlohmann::json record = merge_record(uniform, kept_files, kept_sha);
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : soup.steps) {
    steps.push_back({{"model", s.model},
                     {"model_score", s.model_score},
                     {"soup_score", s.soup_score},
                     {"kept", s.kept}});
  }
  record["greedy"] = {{"metric", soup_metric_name(options.metric())},
                      {"data", data_file.filename().string()},
                      {"score", soup.score},
                      {"steps", steps}};
  if (!options.recompute_bn().empty()) {
    record["recompute_bn"] = {{"file", options.recompute_bn().filename().string()},
                              {"sha256", sha256_hex(read_file(options.recompute_bn()))},
                              {"batch", options.batch()}};
  }
  set_merge_manifest(soup.module, record);
  return soup;
}

}  // namespace stitch
