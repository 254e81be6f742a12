// The training loop behind `stitch train`: build the combined model in
// training mode, feed it batches, step the optimizer, validate, checkpoint.

#include "stitch/train.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <csignal>
#include <iostream>
#include <sstream>

#include "artifact/metadata.h"
#include "core/value_json.h"
#include "stitch/artifact.h"
#include "stitch/build.h"
#include "stitch/spec.h"
#include "train/train_internal.h"
#include "util/atomic_file.h"

namespace stitch {

namespace fs = std::filesystem;
using namespace train_detail;

namespace {

using Clock = std::chrono::steady_clock;

/// metrics.csv: one row per epoch, rewritten whole (atomically) each time.
class Metrics {
 public:
  explicit Metrics(fs::path file) : file_(std::move(file)) {}

  /// Keeps the rows of an earlier run up to `step` (the checkpoint resumed
  /// from); rows past it are redone. `last_row` is the row the checkpoint
  /// carries (an epoch's end): written back when the run was killed before
  /// it wrote it.
  void keep_until(int64_t step, const std::string& last_row) {
    read_rows_until(step);
    if (last_row.empty() || (!rows_.empty() && step_of(rows_.back()) == step)) return;
    rows_.push_back(last_row);
    write();
  }

  /// One row of metrics.csv.
  static std::string row(int64_t epoch, int64_t step, double train_loss, double val_loss,
                         double val_accuracy, double lr, double seconds) {
    auto num = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{:.6g}", v); };
    return fmt::format("{},{},{},{},{},{},{:.3f}", epoch, step, num(train_loss), num(val_loss),
                       num(val_accuracy), num(lr), seconds);
  }

  void add(const std::string& row) {
    rows_.push_back(row);
    write();
  }

 private:
  void write() const {
    std::string text = "epoch,step,train_loss,val_loss,val_accuracy,lr,seconds\n";
    for (const auto& row : rows_) text += row + "\n";
    write_file_atomically(file_, text);
  }

  /// A row's step (its second field); -1 when it has none.
  static int64_t step_of(const std::string& row) {
    std::istringstream fields(row);
    std::string epoch, step;
    std::getline(fields, epoch, ',');
    std::getline(fields, step, ',');
    try {
      return std::stoll(step);
    } catch (const std::exception&) {
      return -1;
    }
  }

  void read_rows_until(int64_t step) {
    std::error_code ec;
    if (!fs::exists(file_, ec)) return;
    std::istringstream in(read_file(file_));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      const int64_t row_step = step_of(line);
      if (row_step >= 0 && row_step <= step) rows_.push_back(line);
    }
  }

  fs::path file_;
  std::vector<std::string> rows_;
};

/// The gradients of every trainable parameter, flattened into one tensor
/// with `extra` values after them, so one all-reduce carries everything.
torch::Tensor flatten_grads(const std::vector<torch::Tensor>& params,
                            const std::vector<double>& extra) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : params) {
    parts.push_back(p.grad().defined() ? p.grad().reshape(-1) : torch::zeros({p.numel()}));
  }
  parts.push_back(torch::tensor(extra, torch::kDouble).to(torch::kFloat));
  return torch::cat(parts);
}

void unflatten_grads(const std::vector<torch::Tensor>& params, const torch::Tensor& flat) {
  int64_t offset = 0;
  for (const auto& p : params) {
    auto slice = flat.narrow(0, offset, p.numel()).view(p.sizes());
    if (p.grad().defined()) {
      p.mutable_grad().copy_(slice);
    } else {
      p.mutable_grad() = slice.clone();
    }
    offset += p.numel();
  }
}

struct Validation {
  double loss = std::nan("");
  double accuracy = std::nan("");
};

/// The trained model as an inference artifact: the training module runs
/// stitch's own kernels and frozen models folded (training_build_options),
/// so a plain build takes the trained weights. `trained_manifest` is the
/// training module's: the model files read again must be the ones that
/// trained. `kept_in` says where the weights are, for the error.
torch::jit::Module ship(const Spec& spec, const std::string& trained_manifest,
                        const std::map<std::string, torch::Tensor>& weights,
                        const std::string& kept_in) {
  torch::jit::Module plain = build(spec.graph);
  const auto trained = recorded_components(trained_manifest);
  const auto read = recorded_components(plain.attr(kManifestAttr).toStringRef());
  for (size_t i = 0; i < trained.size() && i < read.size(); ++i) {
    if (trained[i].sha256 != read[i].sha256) {
      throw Error(fmt::format(
          "model '{}': its file changed while training (or since), so no artifact can be built "
          "from "
          "it; the trained weights are in {}\n"
          "  fix: put the file that trained back, then resume the run (or export the checkpoint)",
          trained[i].name, kept_in));
    }
  }
  copy_state(weights, plain);
  return plain;
}

std::map<std::string, torch::Tensor> weights_of(const torch::jit::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters(true)) out.emplace(p.name, p.value);
  for (const auto& b : module.named_buffers(true)) out.emplace(b.name, b.value);
  return out;
}

/// An earlier run's files in `out`, as they would be listed in an error.
std::vector<std::string> earlier_run_files(const fs::path& out) {
  std::vector<std::string> found;
  const auto steps = list_checkpoints(out);
  if (!steps.empty()) {
    found.push_back(steps.size() == 1 ? fs::relative(steps[0], out).string()
                                      : fmt::format("{} checkpoints", steps.size()));
  }
  std::error_code ec;
  for (const char* name :
       {"checkpoints/best.pt", "checkpoints/last.pt", "metrics.csv", "model.pt"}) {
    if (fs::exists(out / name, ec)) found.emplace_back(name);
  }
  return found;
}

class Trainer {
 public:
  Trainer(const Spec& spec, const TrainOptions& options)
      : spec_(spec), options_(options), lead_(options.rank() == 0) {
    log_ = options.log() ? options.log() : [](const std::string& s) { std::cerr << s << "\n"; };
    quiet_ = [](const std::string&) {};
  }

  TrainResult run() {
    config_ = parse_train_config(spec_);
    data_ = load_dataset(config_, spec_.graph);
    module_ = build(spec_.graph, training_build_options());
    set_training_modes(module_, spec_.graph, lead_ ? log_ : quiet_);
    groups_ = group_parameters(module_, config_);
    optimizer_ = make_optimizer(config_, groups_);
    torch::manual_seed(config_.seed);  // dropout and other random layers
    if (lead_) refuse_earlier_run();
    comm_ = connect(options_);
    Metrics metrics(config_.out / "metrics.csv");
    Position at = start(metrics);
    Progress progress(options_.progress() && lead_, log_);

    const int64_t steps = (data_.train_size + config_.batch - 1) / config_.batch;
    TrainResult result;
    for (; at.epoch < config_.epochs; ++at.epoch, at.batch = 0) {
      const auto started = Clock::now();
      const double seconds_before = at.seconds;
      const torch::Tensor order = epoch_order(config_, at.epoch, data_.train_size);
      progress.start_epoch(at.epoch, config_.epochs, steps, at.batch);
      for (; at.batch < steps; ++at.batch) {
        const int64_t begin = at.batch * config_.batch;
        const int64_t count = std::min(config_.batch, data_.train_size - begin);
        const double loss = step(order.narrow(0, begin, count), at);
        at.loss_sum += loss * count;
        at.loss_samples += count;
        ++at.step;
        at.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - started).count();
        progress.step(at.batch, loss, count);
        const bool stopping = stop_signal_ != 0 && at.batch + 1 < steps;
        if (stopping || (config_.checkpoint_every > 0 && at.step % config_.checkpoint_every == 0 &&
                         at.batch + 1 < steps)) {
          Position next = at;
          ++next.batch;
          checkpoint(next);
        }
        if (stopping) stopped(at);
      }
      const Validation val = lead_ ? validate() : Validation{};
      result.train_loss = at.loss_sum / std::max<int64_t>(at.loss_samples, 1);
      result.val_loss = val.loss;
      result.val_accuracy = val.accuracy;
      const double lr = optimizer_->param_groups()[0].options().get_lr();
      // The checkpoint first: until a fresh run has one, an earlier run's
      // files (metrics.csv included) stay as they were. It carries the row.
      const std::string row = Metrics::row(at.epoch + 1, at.step, result.train_loss, val.loss,
                                           val.accuracy, lr, at.seconds);
      const double epoch_loss = std::isnan(val.loss) ? result.train_loss : val.loss;
      const bool best = std::isnan(at.best_loss) || epoch_loss < at.best_loss;
      if (best) at.best_loss = epoch_loss;
      checkpoint(Position{at.epoch + 1, 0, at.step, at.seconds, 0.0, 0, row, at.best_loss}, best);
      if (lead_) metrics.add(row);
      const double epoch_seconds = at.seconds - seconds_before;
      progress.end_epoch(summary(at, result, epoch_seconds, steps));
      at.loss_sum = 0;
      at.loss_samples = 0;
      if (stop_signal_ != 0 && at.epoch + 1 < config_.epochs) stopped(at);
    }
    result.epochs = config_.epochs;
    result.steps = at.step;
    result.seconds = at.seconds;
    result.model = config_.out / "model.pt";
    if (lead_) {
      save(ship(spec_, module_.attr(kManifestAttr).toStringRef(), weights_of(module_),
                (config_.out / "checkpoints").string()),
           result.model);
    }
    if (comm_) comm_->barrier();  // nobody leaves while rank 0 still writes
    return result;
  }

 private:
  /// --resume loads the newest checkpoint. A fresh run removes an earlier
  /// run's checkpoints once it has written one of its own, so a run that
  /// fails before that leaves the earlier one as it was.
  Position start(Metrics& metrics) {
    if (lead_) {
      std::error_code ec;
      fs::create_directories(config_.out / "checkpoints", ec);
      if (ec) {
        throw IoError(fmt::format("cannot create the output folder {}: {}",
                                  (config_.out / "checkpoints").string(), ec.message()));
      }
      remove_partial_writes();
    }
    if (comm_) comm_->barrier();
    auto files = list_checkpoints(config_.out);
    if (options_.resume() && !files.empty()) {
      Position at = load_checkpoint(files.back(), state());
      check_position(at, files.back());
      if (lead_) {
        metrics.keep_until(at.step, at.metrics_row);
        log_(fmt::format("resuming from {}: epoch {}, after step {}", files.back().string(),
                         at.epoch + 1, at.step));
      }
      return at;
    }
    if (options_.resume() && lead_) {
      log_(fmt::format("warning: no checkpoint in {} to resume from; starting from scratch",
                       (config_.out / "checkpoints").string()));
    }
    if (lead_) {
      earlier_checkpoints_ = files;
      for (const char* name : {"best.pt", "last.pt"}) {
        if (fs::exists(config_.out / "checkpoints" / name)) {
          earlier_checkpoints_.push_back(config_.out / "checkpoints" / name);
        }
      }
    }
    return Position{};
  }

  /// A fresh run never replaces an earlier one unless asked (--overwrite).
  void refuse_earlier_run() const {
    if (options_.overwrite()) return;
    if (options_.resume() && !list_checkpoints(config_.out).empty()) return;
    const auto found = earlier_run_files(config_.out);
    if (found.empty()) return;
    const std::string spec = spec_.file.empty() ? "SPEC.yaml" : spec_.file.string();
    throw Error(fmt::format(
        "{} holds an earlier run ({}); a fresh run would replace it\n"
        "  fix: stitch train {} --resume continues it, --overwrite replaces it; or set another "
        "out: in train:",
        config_.out.string(), fmt::join(found, ", "), spec));
  }

  /// A checkpoint's place in the run, checked against this run's data and
  /// epochs: a foreign or hostile file can neither make the loop run for
  /// ever nor index past the data.
  void check_position(const Position& at, const fs::path& file) const {
    const int64_t steps = (data_.train_size + config_.batch - 1) / config_.batch;
    auto refuse = [&](const std::string& what) {
      throw Error(fmt::format(
          "cannot resume from {}: {}\n"
          "  fix: remove it (the run resumes from the checkpoint before it), or train from the "
          "start (without --resume, or with another out:)",
          file.string(), what));
    };
    if (at.epoch < 0 || at.epoch > config_.epochs) {
      refuse(fmt::format("its epoch {} is not one of this run's 0..{} (epochs: {})", at.epoch,
                         config_.epochs, config_.epochs));
    }
    if (at.batch < 0 || at.batch >= std::max<int64_t>(steps, 1)) {
      refuse(fmt::format("its batch {} is not one of an epoch's 0..{} ({} samples, batch: {})",
                         at.batch, steps - 1, data_.train_size, config_.batch));
    }
    if (at.step < 0) refuse(fmt::format("its step {} is negative", at.step));
    if (at.step > (int64_t{1} << 53)) refuse(fmt::format("its step {} is not a count", at.step));
    if (!std::isfinite(at.seconds) || at.seconds < 0) {
      refuse(fmt::format("its training time {} is not a time", at.seconds));
    }
    if (!std::isfinite(at.loss_sum) || at.loss_samples < 0 || at.loss_samples > data_.train_size) {
      refuse(fmt::format("its running loss ({} over {} samples) is not one of this data's",
                         at.loss_sum, at.loss_samples));
    }
  }

  /// Temporary files that a killed run left behind: of a checkpoint, of
  /// metrics.csv and of model.pt (write_file_atomically's `.NAME.tmp-*`).
  void remove_partial_writes() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(config_.out / "checkpoints", ec)) {
      if (entry.path().filename().string().rfind(".step_", 0) == 0) fs::remove(entry.path(), ec);
    }
    for (const auto& entry : fs::directory_iterator(config_.out, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(".metrics.csv.tmp-", 0) == 0 || name.rfind(".model.pt.tmp-", 0) == 0) {
        fs::remove(entry.path(), ec);
      }
    }
  }

  /// One optimizer step on the samples `index` (the global batch); returns
  /// the batch's loss (averaged over processes).
  double step(const torch::Tensor& index, const Position& at) {
    drop_gradients(*optimizer_);
    const int64_t global = index.size(0);
    const int rank = options_.rank(), world = options_.world_size();
    // Rank r takes its contiguous share of the global batch.
    const int64_t begin = global * rank / world, end = global * (rank + 1) / world;
    double loss_value = 0.0;
    if (end > begin) {
      // Each process's mean, weighted by its share: the sum over processes
      // is the mean over the global batch, gradients included.
      const double share = double(end - begin) / double(global);
      loss_value = forward_backward(module_, spec_.graph, data_, config_.loss,
                                    take(data_, index.narrow(0, begin, end - begin)), share);
    }
    const int requested = options_.stop() ? options_.stop()->load() : 0;
    if (comm_) {
      // The stop request rides with the gradients: every process sees it
      // at the same step.
      torch::Tensor flat = flatten_grads(groups_.params, {loss_value, double(requested)});
      comm_->all_reduce_sum(flat);
      unflatten_grads(groups_.params, flat);
      loss_value = flat[-2].item<double>();
      const int any = static_cast<int>(flat[-1].item<double>() + 0.5);
      // A launcher passes one signal on to every process; one that has not
      // seen it yet reads it from the sum (-1 when processes saw different ones).
      const int theirs = any == SIGINT || any == SIGTERM ? any : -1;
      if (any != 0 && stop_signal_ == 0) stop_signal_ = requested != 0 ? requested : theirs;
    } else if (requested != 0) {
      stop_signal_ = requested;
    }
    if (!std::isfinite(loss_value)) fail_non_finite(at, loss_value);
    optimizer_->step();
    return loss_value;
  }

  /// Ends a run that TrainOptions::stop stopped after step `at.step` (its
  /// checkpoint written).
  [[noreturn]] void stopped(const Position& at) {
    if (comm_) comm_->barrier();  // rank 0 has written the checkpoint
    const auto files = list_checkpoints(config_.out);
    const int signal = stop_signal_;
    throw TrainStopped(
        fmt::format("stopped by {} after step {} (epoch {}); the run is kept in {}\n"
                    "  fix: stitch train {} --resume continues from it",
                    signal == SIGINT    ? "SIGINT (Ctrl-C)"
                    : signal == SIGTERM ? "SIGTERM"
                    : signal < 0        ? "another process's stop request"
                                        : "a stop request",
                    at.step, at.epoch + 1,
                    files.empty() ? (config_.out / "checkpoints").string() : files.back().string(),
                    spec_.file.empty() ? "SPEC.yaml" : spec_.file.string()),
        signal);
  }

  [[noreturn]] void fail_non_finite(const Position& at, double loss) {
    auto files = list_checkpoints(config_.out);
    if (!earlier_checkpoints_.empty()) files.clear();  // not this run's
    throw Error(
        fmt::format("the loss is {} at epoch {}, step {}: training stopped\n"
                    "  {}\n"
                    "  fix: lower lr ({}), check the data, or scale the inputs",
                    std::isnan(loss) ? "NaN" : "infinite", at.epoch + 1, at.step + 1,
                    files.empty() ? "no checkpoint of this run was written yet"
                                  : "the last good checkpoint is kept: " + files.back().string() +
                                        " (resuming continues from it)",
                    config_.lr));
  }

  Validation validate() {
    Validation v;
    const int64_t n = data_.size - data_.train_size;
    if (n <= 0) return v;
    torch::NoGradGuard no_grad;
    module_.eval();
    double loss_sum = 0.0;
    int64_t correct = 0;
    bool has_accuracy = false;
    for (int64_t begin = data_.train_size; begin < data_.size; begin += config_.batch) {
      const int64_t count = std::min(config_.batch, data_.size - begin);
      const auto index = torch::arange(begin, begin + count, torch::kLong);
      const Named values = forward(module_, spec_.graph, data_, take(data_, index));
      loss_sum += compute_loss(config_.loss, values).item<double>() * count;
      if (auto c = count_correct(config_.loss, values)) {
        correct += *c;
        has_accuracy = true;
      }
    }
    set_training_modes(module_, spec_.graph, quiet_);
    v.loss = loss_sum / n;
    if (has_accuracy) v.accuracy = double(correct) / n;
    return v;
  }

  /// What a checkpoint saves of this run.
  TrainState state() const {
    return TrainState{module_,
                      *optimizer_,
                      groups_,
                      config_.optimizer,
                      spec_.file.empty() ? "" : fs::absolute(spec_.file).string(),
                      spec_.text.empty() ? to_spec_yaml(spec_.graph) : spec_.text};
  }

  /// checkpoints/step_*.pt, and last.pt pointing at it (best.pt too, at the
  /// end of an epoch with the lowest loss so far).
  void checkpoint(const Position& at, bool best = false) {
    if (!lead_) return;
    const fs::path file = checkpoint_path(config_.out, at.step);
    save_checkpoint(file, state(), at);
    for (const auto& earlier : earlier_checkpoints_) {
      std::error_code ignored;
      if (earlier != file) fs::remove(earlier, ignored);
    }
    earlier_checkpoints_.clear();
    link_checkpoint(file, "last.pt");
    if (best) link_checkpoint(file, "best.pt");
    prune_checkpoints(config_.out, config_.keep_checkpoints);
  }

  std::string summary(const Position& at, const TrainResult& r, double seconds,
                      int64_t steps) const {
    std::string line = fmt::format("epoch {}/{}: step {}, train loss {:.4f}", at.epoch + 1,
                                   config_.epochs, at.step, r.train_loss);
    if (!std::isnan(r.val_loss)) line += fmt::format(", val loss {:.4f}", r.val_loss);
    if (!std::isnan(r.val_accuracy)) {
      line += fmt::format(", val accuracy {:.2f}%", 100 * r.val_accuracy);
    }
    const double rate =
        seconds > 0 ? std::min(steps * config_.batch, data_.train_size) / seconds : 0.0;
    const double eta = seconds * double(config_.epochs - at.epoch - 1);
    line += fmt::format(", {:.0f} samples/s, {:.1f} s, ETA {:.0f} s", rate, seconds, eta);
    return line;
  }

  const Spec& spec_;
  const TrainOptions& options_;
  const bool lead_;
  std::function<void(const std::string&)> log_, quiet_;
  TrainConfig config_;
  std::vector<fs::path> earlier_checkpoints_;  // a fresh run's predecessor's, until it has one
  int stop_signal_ = 0;  // TrainOptions::stop's signal once a step saw it (-1: another process's)
  Dataset data_;
  torch::jit::Module module_;
  ParamGroups groups_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<Communicator> comm_;
};

}  // namespace

std::string TrainResult::json() const {
  const nlohmann::json j = {{"epochs", epochs},
                            {"steps", steps},
                            {"train_loss", detail::number_json(train_loss)},
                            {"val_loss", detail::number_json(val_loss)},
                            {"val_accuracy", detail::number_json(val_accuracy)},
                            {"seconds", seconds},
                            {"model", model.string()}};
  return detail::dump_json(j);
}

TrainResult train(const Spec& spec, const TrainOptions& options) {
  return with_context("training", [&] { return Trainer(spec, options).run(); });
}

torch::jit::Module model_from_checkpoint(const fs::path& checkpoint) {
  fs::path file = checkpoint;
  std::error_code ec;
  if (fs::is_directory(file, ec)) {  // a run's out folder
    const fs::path best = file / "checkpoints" / "best.pt", last = file / "checkpoints" / "last.pt";
    file = fs::exists(best, ec) ? best : last;
    if (!fs::exists(file, ec)) {
      throw IoError(
          fmt::format("{} holds no checkpoints/best.pt or last.pt\n"
                      "  fix: give a run's out folder, or a checkpoint file",
                      checkpoint.string()));
    }
  }
  const SavedRun run = read_saved_run(file);
  const Spec spec = parse_spec(
      run.spec_text, run.spec_file.empty() ? fs::path("spec.yaml") : fs::path(run.spec_file));
  return with_context("cannot export " + file.string(),
                      [&] { return ship(spec, run.manifest_json, run.weights, file.string()); });
}

}  // namespace stitch
