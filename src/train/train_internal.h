#pragma once
// Pieces of the training loop (train.cpp), one file each: losses, data,
// optimizer, checkpoints, distributed, progress.

#include <torch/optim/optimizer.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <optional>

#include "stitch/build.h"
#include "stitch/tensor_io.h"
#include "stitch/train.h"

namespace stitch::train_detail {

// --- losses (train_loss.cpp) ---------------------------------------------

/// Graph outputs and data targets of one batch, by name.
using Named = std::map<std::string, torch::Tensor>;

/// The loss of one batch: the weighted sum of the config's terms.
torch::Tensor compute_loss(const std::vector<LossTerm>& terms, const Named& values);

/// Correct predictions in a batch for the first term that has a notion of
/// accuracy (cross_entropy: argmax; bce: logit > 0; clip: retrieval of the
/// matching pair), or nullopt if none has.
std::optional<int64_t> count_correct(const std::vector<LossTerm>& terms, const Named& values);

/// The dtype a loss expects for a target (int64 class indices for
/// cross_entropy, float otherwise).
at::ScalarType target_dtype(const std::vector<LossTerm>& terms, const std::string& name,
                            const torch::Tensor& data);

// --- data (train_data.cpp) -----------------------------------------------

/// The tensors of a run: graph inputs in forward order, then targets.
struct Dataset {
  std::vector<std::string> inputs;
  std::vector<std::string> targets;
  Named tensors;  // every input and target, full length
  int64_t size = 0;
  int64_t train_size = 0;  // the first train_size samples train; the rest validate
};

/// Reads the data file and applies `feed`; checks keys, lengths, dtypes,
/// NaN/Inf. Throws IoError/SpecError naming the key and the file.
Dataset load_dataset(const TrainConfig& config, const Graph& graph);

/// The samples of an epoch in order: a permutation seeded by (seed, epoch),
/// or 0..n-1 without shuffling. The same on every process.
torch::Tensor epoch_order(const TrainConfig& config, int64_t epoch, int64_t n);

/// Rows `index` of every tensor.
Named take(const Dataset& data, const torch::Tensor& index);

// --- one step (train_step.cpp) -------------------------------------------

/// How `stitch train` and TrainStep build the module they train: training
/// mode, frozen models folded, small matrix products on stitch's kernel
/// (BuildOptions). Not an artifact to ship: model.pt is a plain build with
/// the trained weights copied in.
BuildOptions training_build_options();

/// Runs forward on a batch; returns every graph output by name, and the
/// batch's targets.
Named forward(torch::jit::Module& module, const Graph& graph, const Dataset& data,
              const Named& batch);

/// Forward and loss on a batch, then backward of loss * `share` (this
/// process's part of the global batch) if the loss is finite; returns
/// loss * share.
double forward_backward(torch::jit::Module& module, const Graph& graph, const Dataset& data,
                        const std::vector<LossTerm>& loss, const Named& batch, double share);

// --- optimizer and frozen parts (train_optim.cpp) -------------------------

/// The trainable parameters, grouped: one group for the default lr, one per
/// lr_for entry (by top-level submodule name), in a fixed order.
struct ParamGroups {
  std::vector<std::string> names;     // of every trainable parameter, in order
  std::vector<torch::Tensor> params;  // same order
  std::vector<std::pair<double, std::vector<torch::Tensor>>> groups;  // lr, params
};
ParamGroups group_parameters(const torch::jit::Module& module, const TrainConfig& config);

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& config,
                                                        const ParamGroups& groups);

/// Before each step: every gradient undefined, so backward hands over its
/// own instead of adding it into a zeroed one (PyTorch's
/// zero_grad(set_to_none=True): two operators less per parameter). A
/// parameter that a batch does not reach keeps no gradient, and the
/// optimizer skips it.
void drop_gradients(torch::optim::Optimizer& optimizer);

/// module.train(), then eval() on frozen models and on BatchNorm layers whose
/// parameters are all frozen, so their running statistics stay put. Warns
/// (through `warn`) about models whose mode was fixed at export by tracing.
void set_training_modes(torch::jit::Module& module, const Graph& graph,
                        const std::function<void(const std::string&)>& warn);

// --- checkpoints (train_checkpoint.cpp) -----------------------------------

/// Where a run stands: `epoch` is the epoch in progress, `batch` the next
/// batch in it (an epoch that just ended is {epoch + 1, 0}).
struct Position {
  int64_t epoch = 0;
  int64_t batch = 0;
  int64_t step = 0;       // optimizer steps so far
  double seconds = 0.0;   // training time so far
  double loss_sum = 0.0;  // of the epoch in progress, weighted by samples
  int64_t loss_samples = 0;
  /// An epoch's checkpoint carries its metrics.csv row, written after it:
  /// a run killed in between gets the row back when it resumes.
  std::string metrics_row;
  /// The lowest epoch loss so far (val_loss, or train_loss without a
  /// validation split): the one checkpoints/best.pt holds. NaN before the
  /// first epoch ends.
  double best_loss = std::nan("");
};

/// Copies every parameter and buffer of `from` into the same-named one of
/// `to` (which may have more: the frozen models a folded training module
/// holds as constants).
void copy_state(const torch::jit::Module& from, torch::jit::Module& to);
void copy_state(const std::map<std::string, torch::Tensor>& from, torch::jit::Module& to);

/// What a checkpoint saves of a run besides its position.
struct TrainState {
  const torch::jit::Module& module;
  torch::optim::Optimizer& optimizer;
  const ParamGroups& groups;
  const std::string& optimizer_name;  // sgd, adam, adamw: resuming with another is refused
  std::string spec_file;              // absolute; anchors the spec's relative paths
  std::string spec_text;
};

/// One torch.save dict (docs/train.md lists its keys), written atomically.
void save_checkpoint(const std::filesystem::path& file, const TrainState& run, const Position& at);
/// Loads weights, buffers, optimizer and RNG state into `run`; returns the
/// position. Every field is checked; a foreign file is refused in words.
Position load_checkpoint(const std::filesystem::path& file, const TrainState& run);

/// What export needs of a checkpoint: the spec that trained and the weights.
struct SavedRun {
  std::string spec_file, spec_text, manifest_json;
  std::map<std::string, torch::Tensor> weights;
};
SavedRun read_saved_run(const std::filesystem::path& file);

/// Points checkpoints/NAME (best.pt, last.pt) at `file`, atomically: a hard
/// link, or a copy where the file system has none.
void link_checkpoint(const std::filesystem::path& file, const std::filesystem::path& name);
/// checkpoints/step_00000042.pt
std::filesystem::path checkpoint_path(const std::filesystem::path& out, int64_t step);
/// Existing checkpoints, oldest first.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& out);
/// Removes all but the newest `keep`.
void prune_checkpoints(const std::filesystem::path& out, int64_t keep);

// --- distributed (train_distributed.cpp) ----------------------------------

/// A c10d process group (Gloo over TCPStore), or nothing for one process.
class Communicator {
 public:
  virtual ~Communicator() = default;
  /// Sums `t` over every process, in place.
  virtual void all_reduce_sum(torch::Tensor& t) = 0;
  virtual void barrier() = 0;
};
std::unique_ptr<Communicator> connect(const TrainOptions& options);

// --- progress (train_progress.cpp) ----------------------------------------

/// A bar on a terminal (epoch, step, loss, samples/s, ETA), plain lines
/// otherwise.
class Progress {
 public:
  Progress(bool enabled, std::function<void(const std::string&)> log);
  void start_epoch(int64_t epoch, int64_t epochs, int64_t steps_in_epoch, int64_t first_step);
  void step(int64_t step_in_epoch, double loss, int64_t samples);
  void end_epoch(const std::string& summary);

 private:
  bool enabled_;
  bool tty_;
  std::function<void(const std::string&)> log_;
  int64_t epoch_ = 0, epochs_ = 0, steps_ = 0, done_ = 0, samples_ = 0;
  std::chrono::steady_clock::time_point started_, last_draw_;
};

}  // namespace stitch::train_detail
