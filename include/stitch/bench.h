#pragma once
// Timing a model: warm-up, then rounds of timed runs; median, spread,
// samples/s and the resident peak of the timed runs. With compare_python the
// same artifact is also timed in /usr/bin/python3 (torch.jit.load, and for a
// stitch artifact its combined forward run as plain Python), the sides
// taking turns round by round so that a machine whose speed drifts treats
// them alike.

#include <torch/arg.h>
#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stitch {

/// Timings of one side: "stitch" (this process, LibTorch), "python"
/// (torch.jit.load in /usr/bin/python3) or "eager" (the combined forward as
/// Python code over the artifact's own submodules).
struct BenchStats {
  std::string side;
  std::vector<double> times_ms;  // every timed run, in order
  double median_ms = 0.0;
  double min_ms = 0.0;
  double max_ms = 0.0;
  double q1_ms = 0.0;  // quartiles (linear interpolation, like numpy's default)
  double q3_ms = 0.0;
  int64_t batch = 1;           // the first dim of the first input
  double samples_per_s = 0.0;  // batch / median
  /// The process's resident peak (VmHWM) during the timed runs; unset when
  /// not measured (the eager side shares the python process).
  std::optional<int64_t> peak_bytes;
  /// The peak is the whole process lifetime's (getrusage), because the
  /// kernel would not reset VmHWM (/proc/self/clear_refs).
  bool peak_since_start = false;

  int64_t runs() const { return static_cast<int64_t>(times_ms.size()); }
};

/// Median, min, max, quartiles and samples/s of `times_ms` (not empty).
[[nodiscard]] BenchStats summarize(std::string side, std::vector<double> times_ms, int64_t batch);

/// Where a benchmark stands, after each side's part of a round.
struct BenchProgress {
  int64_t round = 0;  // 1-based, the round in progress or just done
  int64_t rounds = 0;
  bool round_done = false;  // every side has done this round
  struct Side {
    std::string side;
    int64_t runs_done = 0;
    int64_t runs = 0;
    double median_ms = 0.0;  // of the runs done so far (0 before any)
  };
  std::vector<Side> sides;
};

/// How to time a model.
///   auto report = stitch::bench(model, inputs,
///                               stitch::BenchOptions().runs(100).compare_python(true));
struct BenchOptions {
  /// Timed runs on each side.
  TORCH_ARG(int64_t, runs) = 50;
  /// Untimed runs on each side before the first timed one.
  TORCH_ARG(int64_t, warmup) = 5;
  /// The timed runs come in this many rounds (at most `runs`); with
  /// compare_python the sides take turns, one round each.
  TORCH_ARG(int64_t, rounds) = 5;
  /// Also time the model in Python (see bench()).
  TORCH_ARG(bool, compare_python) = false;
  /// The file Python loads: the one the module came from. Empty: the module
  /// is saved to a temporary file, removed afterwards.
  TORCH_ARG(std::filesystem::path, model_file);
  /// The Python interpreter (default: STITCH_PYTHON, else /usr/bin/python3).
  TORCH_ARG(std::filesystem::path, python);
  /// Called after each side's part of each round.
  TORCH_ARG(std::function<void(const BenchProgress&)>, on_progress);
};

struct BenchReport {
  std::string model;  // what was timed, for table() and json() (set by the caller)
  std::vector<std::pair<std::string, std::string>> inputs;  // x, float[1, 3, 224, 224]
  std::vector<BenchStats> sides;  // "stitch" first, then "python", "eager"
  int threads = 1;                // intra-op threads, on every side
  int64_t runs = 0;               // timed runs per side
  int64_t warmup = 0;
  int64_t rounds = 0;
  std::string python_torch;  // the Python side's torch.__version__
  /// Why there is no "eager" side, when compare_python is on.
  std::string eager_note;

  /// The side named `name`, or nullptr.
  const BenchStats* find(const std::string& name) const;
  /// A short table, as `stitch bench` prints it.
  std::string table() const;
  /// The same numbers as JSON (times included).
  std::string json() const;
};

/// Random inputs for `module`'s forward, in its argument order, from a
/// seeded generator: standard normal floats, integer inputs 0 or 1 (valid
/// indices for any embedding). `shapes` maps input names to shapes; the key
/// "" names the only input of a one-input model. An input left out takes the
/// shape its stitch metadata declares, dynamic dims (N) set to 1; the dtype
/// is the declared one (float without metadata). Throws Error for an unknown
/// name, a missing shape or a shape that contradicts the declared one.
[[nodiscard]] std::vector<torch::Tensor> random_inputs(
    const torch::jit::Module& module, const std::map<std::string, std::vector<int64_t>>& shapes,
    uint64_t seed = 0);

/// Times `module` on `inputs` in eval mode without autograd: options.warmup
/// untimed runs, then options.runs timed ones, in options.rounds rounds.
/// With compare_python, one /usr/bin/python3 process loads the same file with
/// torch.jit.load, sets the same thread count, makes inputs of the same
/// shapes and dtypes, and the sides take turns. Throws Error for bad options,
/// a forward that fails, or a Python without torch.
[[nodiscard]] BenchReport bench(torch::jit::Module module, const std::vector<torch::Tensor>& inputs,
                                const BenchOptions& options = {});

}  // namespace stitch
