#pragma once
// Training a combined model: the `train:` section of a spec, and the loop
// behind `stitch train` (losses, data, optimizers with per-model learning
// rates, frozen parts, checkpoints, resume, data-parallel over c10d).

#include <torch/arg.h>
#include <torch/script.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stitch/error.h"
#include "stitch/spec.h"

namespace stitch {

/// One term of a loss: `weight * fn(args..., key=value)`.
struct LossTerm {
  double weight = 1.0;
  std::string fn;                         // cross_entropy | mse | bce | clip | contrastive
  std::vector<std::string> args;          // graph outputs or targets fed from data
  std::map<std::string, double> options;  // temperature, margin
};

/// The `train:` section of a spec, with defaults filled in and paths made
/// absolute (relative to the spec's folder).
///   train:
///     data: pairs.pt
///     feed: {image: images, labels: labels}
///     loss: 0.5 * mse(a, b) + cross_entropy(logits, labels)
struct TrainConfig {
  std::filesystem::path data;
  /// Spec inputs and loss targets -> data keys. A name not listed here is
  /// looked up in the data under its own name.
  std::map<std::string, std::string> feed;
  std::string loss_text;
  std::vector<LossTerm> loss;
  std::string optimizer = "adamw";  // sgd | adam | adamw
  double momentum = 0.0;            // sgd's, PyTorch's default
  double lr = 1e-3;
  std::map<std::string, double> lr_for;  // top-level submodule name -> lr
  /// Unset: the optimizer's PyTorch default (0 for sgd and adam, 0.01 for adamw).
  std::optional<double> weight_decay;
  int64_t epochs = 1;
  int64_t batch = 32;      // the global batch, over every process
  double val_split = 0.0;  // the last fraction of the data
  bool shuffle = true;
  uint64_t seed = 0;
  std::filesystem::path out;     // default: <spec folder>/runs/<spec stem>
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0: each epoch
  int64_t keep_checkpoints = 3;

  /// Names the loss reads that are not graph outputs: they come from data.
  std::vector<std::string> targets(const Graph& graph) const;
};

/// Reads the spec's `train:` section (from Spec::text, so that errors carry
/// the line and column, else from Spec::train_yaml). Relative paths are from
/// the spec's folder. Checks the loss against the graph: every name must be
/// an output or a fed target. Throws SpecError.
[[nodiscard]] TrainConfig parse_train_config(const Spec& spec);

/// Parses a loss expression: `cross_entropy(logits, labels)`,
/// `0.5 * mse(a, b) + clip(x, y, temperature=0.07)`. Throws SpecError.
[[nodiscard]] std::vector<LossTerm> parse_loss(const std::string& text);

/// What TrainOptions::stop points at: a signal number, 0 until one came.
using StopFlag = const std::atomic<int>*;

/// How to run a training job (the command line's part).
///   stitch::train(spec, stitch::TrainOptions().resume(true));
struct TrainOptions {
  /// Continue from the last checkpoint in `out`.
  TORCH_ARG(bool, resume) = false;
  /// Let a fresh run replace an earlier run's files in `out` (checkpoints,
  /// metrics.csv, model.pt); without it, such a folder is refused.
  TORCH_ARG(bool, overwrite) = false;
  /// This process's rank, and the number of processes (1: no c10d).
  TORCH_ARG(int, rank) = 0;
  TORCH_ARG(int, world_size) = 1;
  /// Where the processes meet (c10d TCPStore on rank 0).
  TORCH_ARG(std::string, master_addr) = "127.0.0.1";
  TORCH_ARG(int, master_port) = 29500;
  /// How long a process waits for the others to join, in seconds; past it,
  /// an error says how many joined (the command line: STITCH_JOIN_SECONDS).
  TORCH_ARG(double, join_seconds) = 120;
  /// Progress: a bar on a terminal, plain lines otherwise, or nothing.
  TORCH_ARG(bool, progress) = true;
  /// Where warnings and progress lines go (default: stderr).
  TORCH_ARG(std::function<void(const std::string&)>, log);
  /// Read after every step: once it holds a signal number (a SIGINT or
  /// SIGTERM handler stores it), training stops there, writes a checkpoint
  /// and throws TrainStopped naming it. An epoch's last step finishes the
  /// epoch (validation, metrics.csv) first. Data-parallel processes stop at
  /// the same step: the flag is summed with the gradients.
  TORCH_ARG(StopFlag, stop) = nullptr;
};

/// Training stopped by TrainOptions::stop: the message names the signal,
/// the checkpoint written and --resume.
class TrainStopped : public Error {
 public:
  TrainStopped(const std::string& message, int signal) : Error(message), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

/// What a finished run measured (its last epoch).
struct TrainResult {
  int64_t epochs = 0;
  int64_t steps = 0;
  double train_loss = 0.0;
  double val_loss = 0.0;      // NaN without a validation split
  double val_accuracy = 0.0;  // NaN when the loss has no classification term
  double seconds = 0.0;
  std::filesystem::path model;  // out/model.pt (written by rank 0)

  /// As JSON: {"epochs", "steps", "train_loss", "val_loss", "val_accuracy"
  /// (null when NaN), "seconds", "model"}.
  std::string json() const;
};

/// Trains the spec's graph as its `train:` section says, writing
/// checkpoints/ (step_*.pt, best.pt, last.pt), metrics.csv and model.pt
/// into `out`. Throws stitch::Error
/// (SpecError for a bad config, IoError for data, Error for NaN/Inf); the
/// last good checkpoint is kept.
TrainResult train(const Spec& spec, const TrainOptions& options = {});

/// The artifact of a checkpoint (a checkpoints/*.pt file, or a run's out
/// folder: its best.pt, else its last.pt), as `stitch train` writes
/// model.pt: the spec that trained, built again from its model files, with
/// the checkpoint's weights. Throws stitch::Error when the file is not a
/// checkpoint or a model file changed since (its sha256 differs).
///   stitch::save(stitch::model_from_checkpoint("runs/a/checkpoints/best.pt"), "best.pt");
[[nodiscard]] torch::jit::Module model_from_checkpoint(const std::filesystem::path& checkpoint);

/// One optimizer step of `stitch train` on a batch held in memory, for
/// timing and for programs that bring their own data loop: the model built
/// for training with its frozen parts and training modes, the loss and the
/// optimizer of the spec's `train:` section (its data file is not read, and
/// nothing is written). `spec` must outlive it.
///   stitch::TrainStep step(spec);
///   double loss = step({{"image", images}, {"labels", labels}});
class TrainStep {
 public:
  explicit TrainStep(const Spec& spec);
  TrainStep(TrainStep&&) noexcept;
  TrainStep& operator=(TrainStep&&) noexcept;
  ~TrainStep();
  /// Forward, loss, backward and optimizer step on `batch` (every graph
  /// input and loss target, by spec name); returns the loss. Throws
  /// stitch::Error for a missing name or a non-finite loss.
  double operator()(const std::map<std::string, torch::Tensor>& batch);
  /// The model being trained, built as `stitch train` builds it (frozen
  /// models folded, small matrix products on stitch's kernel: see
  /// BuildOptions). To save the result, copy its weights into a plain
  /// build, as `stitch train` does for model.pt.
  torch::jit::Module& module();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Whether this build can train data-parallel (c10d with Gloo); if not,
/// `why` says what is missing.
bool distributed_available(std::string* why = nullptr);

}  // namespace stitch
