// stitch merge A.pt B.pt [...] -o OUT.pt --method linear|slerp|task_arithmetic|ties|dare
//   [--base BASE.pt] [--weights ...] [--t T] [--scale S] [--density D] [--seed S]
//   [--recompute-bn DATA] [--greedy --data VAL --metric accuracy|loss] [--scores CSV]

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>

#include "cli.h"

namespace stitch::cli {

namespace {

struct MergeArgs {
  std::vector<std::string> files;
  std::string out, method = "linear", base, weights, recompute_bn, data, metric = "accuracy",
                   scores;
  double t = 0.5, scale = 1.0, density = 0.5;
  uint64_t seed = 0;
  int64_t batch = 64;
  bool greedy = false;
};

/// The options as given, checked against the method (UsageError).
MergeOptions merge_options(const MergeArgs& a, const CLI::App& cmd) {
  MergeOptions o;
  MergeMethod method{};
  if (!parse_merge_method(a.method, method)) {
    throw UsageError(fmt::format("--method: unknown merge method '{}'; the methods are {}",
                                 a.method, merge_method_names()));
  }
  o.method(method).t(a.t).scale(a.scale).density(a.density).seed(a.seed).base(a.base);
  try {
    if (!a.weights.empty()) parse_merge_weights(a.weights, a.files.size(), o);
  } catch (const Error& e) {
    throw UsageError(fmt::format("--{}", e.what()));
  }
  try {
    o.validate(a.files.size(), "--");
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  // Options the method does not use are a mistake, not something to ignore.
  for (const auto& option : merge_option_names()) {
    if (cmd.count("--" + option) && !o.uses(option)) {
      throw UsageError(fmt::format("--{} is not an option of the {} method (its options: --{})",
                                   option, a.method,
                                   fmt::join(merge_method_options(method), ", --")));
    }
  }
  return o;
}

void run_greedy(const MergeArgs& a, const CLI::App& cmd) {
  if (a.data.empty()) throw UsageError("--greedy needs --data VAL: the data to score on");
  if (cmd.count("--method") && a.method != "linear") {
    throw UsageError("a greedy soup is a uniform average: --greedy takes no --method but linear");
  }
  for (const auto& option : merge_option_names()) {
    if (cmd.count("--" + option)) {
      throw UsageError(fmt::format("a greedy soup is a uniform average: it takes no --{}", option));
    }
  }
  if (!a.scores.empty() && std::filesystem::path(a.scores) == std::filesystem::path(a.out)) {
    throw UsageError("--scores and -o name the same file");
  }
  SoupMetric metric{};
  if (!parse_soup_metric(a.metric, metric)) {
    throw UsageError(fmt::format("--metric: '{}' is not accuracy or loss", a.metric));
  }
  const std::vector<std::filesystem::path> files(a.files.begin(), a.files.end());
  Soup soup = greedy_soup(files, a.data,
                          SoupOptions().metric(metric).recompute_bn(a.recompute_bn).batch(a.batch));
  std::filesystem::path scores = a.scores;
  if (scores.empty()) {
    scores = a.out;
    scores.replace_extension(".scores.csv");
  }
  save(soup.module, a.out);
  soup.write_csv(scores);
  std::cout << soup.table(metric) << fmt::format("wrote {}, {}\n", a.out, scores.string());
}

}  // namespace

void add_merge(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "merge models of one architecture in weight space");
  auto a = std::make_shared<MergeArgs>();
  cmd->add_option("models", a->files, "model files of one architecture")->required();
  cmd->add_option("-o,--output", a->out, "the merged model to write (.pt)")->required();
  cmd->add_option("--method", a->method,
                  "linear | slerp | task_arithmetic | ties | dare (default linear)");
  cmd->add_option("--base", a->base,
                  "the model the others were fine-tuned from (task_arithmetic, ties, dare)");
  cmd->add_option("--weights", a->weights,
                  "linear: W,... one per model, or 'GLOB=W,...' per tensor by glob");
  cmd->add_option("--t", a->t, "slerp: from 0 (the first model) to 1 (the second); default 0.5");
  cmd->add_option("--scale", a->scale, "the factor of the merged task vector; default 1");
  cmd->add_option("--density", a->density,
                  "ties, dare: the fraction of each task vector kept; default 0.5");
  cmd->add_option("--seed", a->seed, "dare: the seed of the drops; default 0");
  cmd->add_option("--recompute-bn", a->recompute_bn,
                  "recompute BatchNorm statistics on this data (a tensor file)");
  cmd->add_option("--batch", a->batch, "rows per batch for --recompute-bn and scores; default 64")
      ->check(at_least(1));
  cmd->add_flag("--greedy", a->greedy,
                "a greedy soup: keep each model only if it improves the score on --data");
  cmd->add_option("--data", a->data, "--greedy: the held-out data to score on");
  cmd->add_option("--metric", a->metric, "--greedy: accuracy (default) or loss");
  cmd->add_option("--scores", a->scores, "--greedy: the CSV of scores (default OUT.scores.csv)");
  cmd->callback([a, cmd] {
    if (a->greedy) {
      run_greedy(*a, *cmd);
      return;
    }
    for (const char* flag : {"--data", "--metric", "--scores"}) {
      if (cmd->count(flag)) throw UsageError(fmt::format("{} is for --greedy", flag));
    }
    const MergeOptions options = merge_options(*a, *cmd);
    const std::vector<std::filesystem::path> files(a->files.begin(), a->files.end());
    std::string summary;
    torch::jit::Module merged = merge(files, options, &summary);
    if (!a->recompute_bn.empty()) {
      recompute_batchnorm(merged, a->recompute_bn, a->batch);
      summary += fmt::format("; BatchNorm statistics recomputed on {}", a->recompute_bn);
    }
    save(merged, a->out);
    std::cout << summary << "\nwrote " << a->out << "\n";
  });
}

}  // namespace stitch::cli
