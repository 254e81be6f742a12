// Checkpoints: weights and buffers, optimizer state, RNG state and the
// position in the run, in one torch::serialize archive written atomically.

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>

#include "train/train_internal.h"
#include "util/atomic_file.h"

namespace stitch::train_detail {

namespace fs = std::filesystem;

namespace {

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

void copy_state(const torch::jit::Module& from, torch::jit::Module& to) {
  std::map<std::string, torch::Tensor> target;
  for (auto& [name, t] : state_of(to)) target.emplace(name, t);
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : state_of(from)) {
    auto it = target.find(name);
    if (it == target.end() || it->second.sizes() != t.sizes()) {
      throw Error(
          fmt::format("internal: the trained '{}' has no place in the model to save", name));
    }
    it->second.copy_(t);
  }
}

void save_checkpoint(const fs::path& file, const torch::jit::Module& module,
                     torch::optim::Optimizer& optimizer, const std::string& optimizer_name,
                     const Position& at) {
  torch::serialize::OutputArchive archive;
  c10::List<std::string> names;
  c10::List<at::Tensor> tensors;
  for (const auto& [name, t] : state_of(module)) {
    names.push_back(name);
    tensors.push_back(t.detach().clone());
  }
  archive.write("names", names);
  archive.write("tensors", tensors);
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  archive.write("optimizer", opt);
  archive.write("optimizer_name", c10::IValue(optimizer_name));
  {
    std::lock_guard<std::mutex> lock(default_generator().mutex());
    archive.write("rng", default_generator().get_state());
  }
  archive.write("epoch", at.epoch);
  archive.write("batch", at.batch);
  archive.write("step", at.step);
  archive.write("seconds", at.seconds);
  archive.write("loss_sum", at.loss_sum);
  archive.write("loss_samples", at.loss_samples);
  archive.write("metrics_row", c10::IValue(at.metrics_row));
  fs::create_directories(file.parent_path());
  write_atomically(file, [&](const ByteSink& sink) { archive.save_to(sink); });
}

Position load_checkpoint(const fs::path& file, torch::jit::Module& module,
                         torch::optim::Optimizer& optimizer, const std::string& optimizer_name) {
  return with_context("cannot resume from " + file.string(), [&] {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string());
    c10::IValue names, tensors, value;
    archive.read("names", names);
    archive.read("tensors", tensors);
    std::map<std::string, at::Tensor> saved;
    const auto name_list = names.toList();
    const auto tensor_list = tensors.toList();
    for (size_t i = 0; i < name_list.size(); ++i) {
      saved[name_list.get(i).toStringRef()] = tensor_list.get(i).toTensor();
    }
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : state_of(module)) {
      auto it = saved.find(name);
      if (it == saved.end() || it->second.sizes() != t.sizes()) {
        throw Error(
            fmt::format("the checkpoint is of another model: '{}' {}\n"
                        "  fix: put the spec's models back as they were, or train from the start "
                        "(not resuming, or with another out:)",
                        name, it == saved.end() ? "is not in it" : "has another shape in it"));
      }
      t.copy_(it->second);
    }
    c10::IValue trained_with;
    if (archive.try_read("optimizer_name", trained_with) &&
        trained_with.toStringRef() != optimizer_name) {
      throw Error(
          fmt::format("the checkpoint was trained with optimizer: {}, the spec now says {}\n"
                      "  fix: put optimizer: {} back, or train from the start (not resuming)",
                      trained_with.toStringRef(), optimizer_name, trained_with.toStringRef()));
    }
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    optimizer.load(opt);
    archive.read("rng", value);
    {
      std::lock_guard<std::mutex> lock(default_generator().mutex());
      default_generator().set_state(value.toTensor());
    }
    Position at;
    archive.read("epoch", value);
    at.epoch = value.toInt();
    archive.read("batch", value);
    at.batch = value.toInt();
    archive.read("step", value);
    at.step = value.toInt();
    archive.read("seconds", value);
    at.seconds = value.toDouble();
    archive.read("loss_sum", value);
    at.loss_sum = value.toDouble();
    archive.read("loss_samples", value);
    at.loss_samples = value.toInt();
    if (archive.try_read("metrics_row", value) && value.isString()) {
      at.metrics_row = value.toStringRef();
    }
    return at;
  });
}

}  // namespace stitch::train_detail
