#pragma once
// How models of one architecture are merged in weight space: the options of
// `stitch merge`, of a spec's `merge:` model entry and of stitch::merge
// (docs/merge.md). Only the options live here, below the graph, because a
// model entry of a graph can be a merge; the merging is in stitch/merge.h.

#include <torch/arg.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace stitch {

enum class MergeMethod { linear, slerp, task_arithmetic, ties, dare };

/// "linear", "slerp", ... as the CLI and the spec write them.
const char* merge_method_name(MergeMethod method);
/// The methods' names, for messages: "linear, slerp, task_arithmetic, ties, dare".
std::string merge_method_names();
/// The method named `name`; false if there is none.
bool parse_merge_method(const std::string& name, MergeMethod& method);
/// Every method's name, in order.
std::vector<std::string> merge_method_list();

/// The options `method` takes besides the models, as the spec and the
/// command line name them: linear {weights}, slerp {t}, task_arithmetic
/// {base, scale}, ties {base, density, scale}, dare {base, density, seed,
/// scale}. The one table the CLI, the spec reader and writer, and the
/// manifest follow.
const std::vector<std::string>& merge_method_options(MergeMethod method);
/// Every option of some method.
const std::vector<std::string>& merge_option_names();

/// Weights of a linear merge for the tensors whose names match `glob`
/// (fnmatch, `*` matches dots too): one per model.
struct GlobWeights {
  std::string glob;
  std::vector<double> weights;
};

///   stitch::MergeOptions().method(stitch::MergeMethod::ties).base("base.pt").density(0.2)
struct MergeOptions {
  TORCH_ARG(MergeMethod, method) = MergeMethod::linear;
  /// linear: one weight per model (default: 1/n each), used as given.
  TORCH_ARG(std::vector<double>, weights);
  /// linear: weights per tensor by glob; the first match wins, a tensor no
  /// glob matches gets `weights` (or 1/n each).
  TORCH_ARG(std::vector<GlobWeights>, glob_weights);
  /// slerp: 0 gives the first model, 1 the second.
  TORCH_ARG(double, t) = 0.5;
  /// task_arithmetic, ties, dare: the model the others were fine-tuned from.
  TORCH_ARG(std::filesystem::path, base);
  /// task_arithmetic, ties, dare: the factor of the merged task vector.
  TORCH_ARG(double, scale) = 1.0;
  /// ties, dare: the fraction of each task vector kept, in (0, 1].
  TORCH_ARG(double, density) = 0.5;
  /// dare: the seed of the drops.
  TORCH_ARG(uint64_t, seed) = 0;

 public:  // TORCH_ARG leaves the struct private
  /// Whether the method takes a base model.
  bool needs_base() const;
  /// Whether the method takes the option `name` (merge_method_options).
  bool uses(const std::string& name) const;
  /// The value of a numeric option: t, scale, density or seed.
  double number(const std::string& name) const;
  /// The method and the options it uses, as text: "ties density=0.2
  /// scale=1", the weights as `--weights` writes them. The same merge
  /// options give the same text.
  std::string str() const;
  /// Throws stitch::Error when an option does not fit the method or the
  /// number of models (slerp of 3, ties without a base, a density of 0,
  /// weights of linear for another method, ...). Options are named with
  /// `prefix` before them: "--t" on the command line, "t" in a spec.
  void validate(size_t models, const std::string& prefix = "") const;
};

/// `options`' weights as the `--weights` string that parses back to them
/// ("" when they are the default): "0.7,0.3", or "GLOB=W,..." with the
/// plain weights, if any, as a last '*' glob.
std::string merge_weights_text(const MergeOptions& options);

/// Parses `--weights` / a spec's `weights:` string: "0.7,0.3" (one per
/// model), or "GLOB=W,..." where W is one weight per model joined by ':'
/// ("head.*=0.5:0.3:0.2") or, for two models, the first's weight (the
/// second gets 1 - W). Throws stitch::Error saying what is wrong.
void parse_merge_weights(const std::string& text, size_t models, MergeOptions& options);

}  // namespace stitch
