// Checkpoints: one torch.save file (a dict, which Python's torch.load reads
// as it is) with the trained weights by name, the optimizer's state by
// parameter name, LibTorch's RNG state, the position in the run and the
// spec that trained. docs/train.md lists the keys.

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>

#include "artifact/metadata.h"
#include "io/codec.h"
#include "stitch/spec.h"
#include "train/train_internal.h"
#include "util/atomic_file.h"
#include "util/torch_compat.h"

namespace stitch::train_detail {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "stitch checkpoint 1";

/// Every parameter and buffer by name (a module's whole state).
std::vector<std::pair<std::string, torch::Tensor>> state_of(const torch::jit::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(true)) out.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(true)) out.emplace_back(b.name, b.value);
  return out;
}

at::Generator& default_generator() {
  static at::Generator gen = at::detail::getDefaultCPUGenerator();
  return gen;
}

using Dict = c10::impl::GenericDict;

Dict new_dict() {
  return Dict(c10::StringType::get(), c10::AnyType::get());
}

torch::Tensor saved_copy(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU).contiguous().clone();
}

/// The fields of a checkpoint, each checked for its kind: a foreign or
/// hand-edited file is refused in words, never trusted.
class Reader {
 public:
  explicit Reader(c10::IValue root) : root_(std::move(root)) {}

  Dict dict(const Dict& in, const std::string& key, const std::string& path) const {
    const c10::IValue v = field(in, key, path);
    if (!v.isGenericDict()) bad(path + key, "a dict");
    return v.toGenericDict();
  }
  torch::Tensor tensor(const Dict& in, const std::string& key, const std::string& path) const {
    const c10::IValue v = field(in, key, path);
    if (!v.isTensor()) bad(path + key, "a tensor");
    return v.toTensor();
  }
  int64_t integer(const Dict& in, const std::string& key, const std::string& path) const {
    const c10::IValue v = field(in, key, path);
    if (!v.isInt()) bad(path + key, "an integer");
    return v.toInt();
  }
  double real(const Dict& in, const std::string& key, const std::string& path) const {
    const c10::IValue v = field(in, key, path);
    if (v.isInt()) return static_cast<double>(v.toInt());
    if (!v.isDouble()) bad(path + key, "a number");
    return v.toDouble();
  }
  std::string text(const Dict& in, const std::string& key, const std::string& path) const {
    const c10::IValue v = field(in, key, path);
    if (!v.isString()) bad(path + key, "a string");
    return v.toStringRef();
  }
  Dict root() const {
    if (!root_.isGenericDict()) throw Error("it is not a stitch checkpoint (not a dict)");
    return root_.toGenericDict();
  }

 private:
  static c10::IValue field(const Dict& in, const std::string& key, const std::string& path) {
    const auto it = in.find(key);
    if (it == in.end()) throw Error(fmt::format("it has no '{}{}'", path, key));
    return it->value();
  }
  [[noreturn]] static void bad(const std::string& key, const char* want) {
    throw Error(fmt::format("its '{}' is not {}", key, want));
  }
  c10::IValue root_;
};

// --- the optimizer's state, by parameter name -----------------------------

using torch::optim::AdamParamState;
using torch::optim::AdamWParamState;
using torch::optim::OptimizerParamState;
using torch::optim::SGDParamState;

template <typename State>
void put_adam(Dict& out, const State& s) {
  out.insert("step", s.step());
  out.insert("exp_avg", saved_copy(s.exp_avg()));
  out.insert("exp_avg_sq", saved_copy(s.exp_avg_sq()));
  if (s.max_exp_avg_sq().defined()) out.insert("max_exp_avg_sq", saved_copy(s.max_exp_avg_sq()));
}

Dict param_state(const OptimizerParamState& state) {
  Dict out = new_dict();
  if (const auto* s = dynamic_cast<const SGDParamState*>(&state)) {
    if (s->momentum_buffer().defined()) {
      out.insert("momentum_buffer", saved_copy(s->momentum_buffer()));
    }
  } else if (const auto* a = dynamic_cast<const AdamParamState*>(&state)) {
    put_adam(out, *a);
  } else if (const auto* w = dynamic_cast<const AdamWParamState*>(&state)) {
    put_adam(out, *w);
  }
  return out;
}

template <typename State>
std::unique_ptr<OptimizerParamState> read_adam(const Reader& r, const Dict& in,
                                               const std::string& path, const torch::Tensor& p) {
  auto s = std::make_unique<State>();
  s->step(r.integer(in, "step", path));
  if (s->step() < 0) throw Error(fmt::format("its '{}step' is negative", path));
  s->exp_avg(r.tensor(in, "exp_avg", path));
  s->exp_avg_sq(r.tensor(in, "exp_avg_sq", path));
  if (in.contains("max_exp_avg_sq")) s->max_exp_avg_sq(r.tensor(in, "max_exp_avg_sq", path));
  for (const auto& t : {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()}) {
    if (t.defined() && (t.sizes() != p.sizes() || t.scalar_type() != p.scalar_type())) {
      throw Error(fmt::format("its '{}' moments have another shape or dtype than the parameter",
                              path.substr(0, path.size() - 1)));
    }
  }
  return s;
}

std::unique_ptr<OptimizerParamState> read_param_state(const Reader& r, const Dict& in,
                                                      const std::string& path,
                                                      const std::string& optimizer,
                                                      const torch::Tensor& p) {
  if (optimizer == "sgd") {
    auto s = std::make_unique<SGDParamState>();
    if (in.contains("momentum_buffer")) {
      const auto buffer = r.tensor(in, "momentum_buffer", path);
      if (buffer.sizes() != p.sizes() || buffer.scalar_type() != p.scalar_type()) {
        throw Error(
            fmt::format("its '{}momentum_buffer' has another shape or dtype than the "
                        "parameter",
                        path));
      }
      s->momentum_buffer(buffer);
    }
    return s;
  }
  if (optimizer == "adam") return read_adam<AdamParamState>(r, in, path, p);
  return read_adam<AdamWParamState>(r, in, path, p);
}

/// The parameter each optimizer slot is for, by name.
std::map<const void*, std::string> parameter_names(const ParamGroups& groups) {
  std::map<const void*, std::string> names;
  for (size_t i = 0; i < groups.params.size(); ++i) {
    names[groups.params[i].unsafeGetTensorImpl()] = groups.names[i];
  }
  return names;
}

Dict optimizer_record(const TrainState& run) {
  const auto names = parameter_names(run.groups);
  auto& states = run.optimizer.state();
  Dict state = new_dict();
  c10::impl::GenericList groups(c10::AnyType::get());
  for (auto& group : run.optimizer.param_groups()) {
    Dict g = new_dict();
    g.insert("lr", group.options().get_lr());
    c10::List<std::string> params;
    for (const auto& p : group.params()) {
      const std::string& name = names.at(p.unsafeGetTensorImpl());
      params.push_back(name);
      const auto it = states.find(torch_compat::optimizer_state_key(p));
      if (it != states.end()) state.insert(name, param_state(*it->second));
    }
    g.insert("params", params);
    groups.push_back(g);
  }
  Dict out = new_dict();
  out.insert("name", run.optimizer_name);
  out.insert("param_groups", groups);
  out.insert("state", state);
  return out;
}

void restore_optimizer(const Reader& r, const Dict& record, const TrainState& run) {
  const std::string trained_with = r.text(record, "name", "optimizer.");
  if (trained_with != run.optimizer_name) {
    throw Error(
        fmt::format("the checkpoint was trained with optimizer: {}, the spec now says {}\n"
                    "  fix: put optimizer: {} back, or train from the start (not resuming)",
                    trained_with, run.optimizer_name, trained_with));
  }
  const Dict state = r.dict(record, "state", "optimizer.");
  const auto names = parameter_names(run.groups);
  auto& states = run.optimizer.state();
  states.clear();
  for (auto& group : run.optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      const std::string& name = names.at(p.unsafeGetTensorImpl());
      if (!state.contains(name)) continue;  // no step reached it yet
      const std::string path = "optimizer.state." + name + ".";
      const Dict entry = r.dict(state, name, "optimizer.state.");
      states[torch_compat::optimizer_state_key(p)] =
          read_param_state(r, entry, path, run.optimizer_name, p);
    }
  }
}

}  // namespace

fs::path checkpoint_path(const fs::path& out, int64_t step) {
  return out / "checkpoints" / fmt::format("step_{:08d}.pt", step);
}

std::vector<fs::path> list_checkpoints(const fs::path& out) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(out / "checkpoints", ec)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("step_", 0) == 0 && entry.path().extension() == ".pt") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());  // zero-padded step numbers sort by step
  return files;
}

void prune_checkpoints(const fs::path& out, int64_t keep) {
  auto files = list_checkpoints(out);
  for (size_t i = 0; i + static_cast<size_t>(keep) < files.size(); ++i) {
    std::error_code ec;
    fs::remove(files[i], ec);
  }
}

void link_checkpoint(const fs::path& file, const fs::path& name) {
  const fs::path target = file.parent_path() / name;
  const fs::path temporary = file.parent_path() / ("." + name.string() + ".tmp");
  std::error_code ec;
  fs::remove(temporary, ec);
  fs::create_hard_link(file, temporary, ec);
  if (ec) {  // a file system without hard links: a copy
    ec.clear();
    fs::copy_file(file, temporary, fs::copy_options::overwrite_existing, ec);
  }
  if (!ec) fs::rename(temporary, target, ec);
  if (ec) {
    throw IoError(fmt::format("cannot write {}: {}", target.string(), ec.message()));
  }
}

void copy_state(const torch::jit::Module& from, torch::jit::Module& to) {
  std::map<std::string, torch::Tensor> trained;
  for (auto& [name, t] : state_of(from)) trained.emplace(name, t);
  copy_state(trained, to);
}

void copy_state(const std::map<std::string, torch::Tensor>& from, torch::jit::Module& to) {
  std::map<std::string, torch::Tensor> target;
  for (auto& [name, t] : state_of(to)) target.emplace(name, t);
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : from) {
    auto it = target.find(name);
    if (it == target.end() || it->second.sizes() != t.sizes()) {
      throw Error(fmt::format("the trained '{}' has no place in the model", name));
    }
    it->second.copy_(t);
  }
}

void save_checkpoint(const fs::path& file, const TrainState& run, const Position& at) {
  Dict model = new_dict();
  for (const auto& [name, t] : state_of(run.module)) model.insert(name, saved_copy(t));
  Dict position = new_dict();
  position.insert("epoch", at.epoch);
  position.insert("batch", at.batch);
  position.insert("step", at.step);
  position.insert("seconds", at.seconds);
  position.insert("loss_sum", at.loss_sum);
  position.insert("loss_samples", at.loss_samples);
  position.insert("best_loss", at.best_loss);
  Dict spec = new_dict();
  spec.insert("file", run.spec_file);
  spec.insert("text", run.spec_text);
  spec.insert("manifest", stored_metadata(run.module).manifest_json);
  Dict root = new_dict();
  root.insert("format", std::string(kFormat));
  root.insert("model", model);
  root.insert("optimizer", optimizer_record(run));
  {
    std::lock_guard<std::mutex> lock(default_generator().mutex());
    root.insert("rng", default_generator().get_state());
  }
  root.insert("position", position);
  root.insert("metrics_row", at.metrics_row);
  root.insert("spec", spec);
  const std::string bytes = io_detail::encode_pickled(root);
  fs::create_directories(file.parent_path());
  write_file_atomically(file, bytes);
}

namespace {

/// The checkpoint's dict, or an Error saying why the file is not one.
Reader open_checkpoint(const fs::path& file) {
  const std::string bytes = read_file(file);
  c10::IValue root;
  try {
    root = io_detail::read_pickled(bytes);
  } catch (const std::exception& e) {
    throw Error(fmt::format("it is not a stitch checkpoint: {}", e.what()));
  }
  Reader r(root);
  const Dict top = r.root();
  if (!top.contains("format") || !top.at("format").isString() ||
      top.at("format").toStringRef() != kFormat) {
    throw Error(fmt::format("it is not a checkpoint of this stitch (no format: '{}')", kFormat));
  }
  return r;
}

std::map<std::string, torch::Tensor> model_tensors(const Reader& r) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : r.dict(r.root(), "model", "")) {
    if (!entry.value().isTensor()) {
      throw Error(fmt::format("its 'model.{}' is not a tensor", entry.key().toStringRef()));
    }
    out.emplace(entry.key().toStringRef(), entry.value().toTensor());
  }
  return out;
}

}  // namespace

Position load_checkpoint(const fs::path& file, const TrainState& run) {
  return with_context("cannot resume from " + file.string(), [&] {
    const Reader r = open_checkpoint(file);
    const auto saved = model_tensors(r);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : state_of(run.module)) {
      auto it = saved.find(name);
      if (it == saved.end() || it->second.sizes() != t.sizes() ||
          it->second.scalar_type() != t.scalar_type()) {
        throw Error(
            fmt::format("the checkpoint is of another model: '{}' {}\n"
                        "  fix: put the spec's models back as they were, or train from the start "
                        "(not resuming, or with another out:)",
                        name, it == saved.end() ? "is not in it" : "has another shape in it"));
      }
      t.copy_(it->second);
    }
    restore_optimizer(r, r.dict(r.root(), "optimizer", ""), run);
    const torch::Tensor rng = r.tensor(r.root(), "rng", "");
    {
      std::lock_guard<std::mutex> lock(default_generator().mutex());
      const torch::Tensor current = default_generator().get_state();
      if (rng.scalar_type() != current.scalar_type() || rng.sizes() != current.sizes()) {
        throw Error("its 'rng' is not a random generator's state");
      }
      default_generator().set_state(rng);
    }
    const Dict position = r.dict(r.root(), "position", "");
    Position at;
    at.epoch = r.integer(position, "epoch", "position.");
    at.batch = r.integer(position, "batch", "position.");
    at.step = r.integer(position, "step", "position.");
    at.seconds = r.real(position, "seconds", "position.");
    at.loss_sum = r.real(position, "loss_sum", "position.");
    at.loss_samples = r.integer(position, "loss_samples", "position.");
    at.best_loss = r.real(position, "best_loss", "position.");
    at.metrics_row = r.text(r.root(), "metrics_row", "");
    return at;
  });
}

SavedRun read_saved_run(const fs::path& file) {
  return with_context("cannot read the checkpoint " + file.string(), [&] {
    const Reader r = open_checkpoint(file);
    const Dict spec = r.dict(r.root(), "spec", "");
    SavedRun out;
    out.spec_file = r.text(spec, "file", "spec.");
    out.spec_text = r.text(spec, "text", "spec.");
    out.manifest_json = r.text(spec, "manifest", "spec.");
    out.weights = model_tensors(r);
    return out;
  });
}

}  // namespace stitch::train_detail
