#include "stitch/bench.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "artifact/declared_io.h"
#include "artifact/metadata.h"
#include "bench/bench_python.h"
#include "check/example_inputs.h"
#include "stitch/artifact.h"
#include "stitch/bind_inputs.h"
#include "stitch/error.h"
#include "stitch/shape.h"

namespace stitch {

namespace {

using bench_detail::PythonWorker;
using bench_detail::WorkerTimes;

// --- statistics -------------------------------------------------------------

/// The q-quantile of sorted values, interpolating linearly between ranks.
double quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

double median_of(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  return quantile(values, 0.5);
}

// --- resident peak ----------------------------------------------------------

/// Resets the kernel's resident high-water mark (VmHWM) of this process;
/// false when the kernel refuses.
bool reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

// --- inputs -----------------------------------------------------------------

std::vector<int64_t> declared_shape_at_one(const DeclaredInput& input) {
  std::vector<int64_t> shape;
  for (const auto& d : input.dims) shape.push_back(d.is_number_integer() ? d.get<int64_t>() : 1);
  return shape;
}

// --- the sides --------------------------------------------------------------

/// One thing being timed: stitch in this process, or a side of the worker.
struct Side {
  std::string name;
  std::function<void(int64_t)> warmup;
  std::function<WorkerTimes(int64_t)> time;
  WorkerTimes done;
};

/// A folder for the module Python loads, removed with the object.
class TempModelFile {
 public:
  explicit TempModelFile(const torch::jit::Module& module) {
    std::string pattern = (std::filesystem::temp_directory_path() / "stitch_bench_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw IoError(fmt::format("cannot create a temporary folder in {}",
                                std::filesystem::temp_directory_path().string()));
    }
    folder_ = pattern;
    save(module, path());
  }
  ~TempModelFile() {
    std::error_code ec;
    std::filesystem::remove_all(folder_, ec);
  }
  TempModelFile(const TempModelFile&) = delete;
  TempModelFile& operator=(const TempModelFile&) = delete;
  std::filesystem::path path() const { return folder_ / "model.pt"; }

 private:
  std::filesystem::path folder_;
};

std::filesystem::path python_interpreter(const BenchOptions& options) {
  if (!options.python().empty()) return options.python();
  const char* env = std::getenv("STITCH_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

void check_options(const BenchOptions& options) {
  auto at_least = [](const char* what, int64_t value, int64_t min) {
    if (value < min) {
      throw Error(fmt::format("bench: {} must be at least {} (got {})", what, min, value));
    }
  };
  at_least("runs", options.runs(), 1);
  at_least("warmup", options.warmup(), 0);
  at_least("rounds", options.rounds(), 1);
}

std::string ms_str(double ms) {
  return ms >= 100 ? fmt::format("{:.0f}", ms) : fmt::format("{:.3g}", ms);
}

std::optional<double> ratio(const BenchStats* a, const BenchStats* b) {
  if (!a || !b || b->median_ms <= 0) return std::nullopt;
  return a->median_ms / b->median_ms;
}

}  // namespace

BenchStats summarize(std::string side, std::vector<double> times_ms, int64_t batch) {
  if (times_ms.empty()) throw Error("bench: no timed runs to summarize");
  BenchStats s;
  s.side = std::move(side);
  std::vector<double> sorted = times_ms;
  std::sort(sorted.begin(), sorted.end());
  s.times_ms = std::move(times_ms);
  s.min_ms = sorted.front();
  s.max_ms = sorted.back();
  s.q1_ms = quantile(sorted, 0.25);
  s.median_ms = quantile(sorted, 0.5);
  s.q3_ms = quantile(sorted, 0.75);
  s.batch = batch;
  s.samples_per_s = s.median_ms > 0 ? batch * 1e3 / s.median_ms : 0.0;
  return s;
}

std::vector<torch::Tensor> random_inputs(const torch::jit::Module& module,
                                         const std::map<std::string, std::vector<int64_t>>& shapes,
                                         uint64_t seed) {
  const std::vector<DeclaredInput> declared = declared_inputs(module);
  std::vector<std::string> names, written;
  for (const auto& d : declared) names.push_back(d.name);
  for (const auto& [key, shape] : shapes) written.push_back(key);
  const auto bound = bind_input_names("the model", names, written);
  std::map<std::string, std::vector<int64_t>> given;
  size_t k = 0;
  for (const auto& [key, shape] : shapes) {
    const std::string& name = bound[k++];
    auto it = std::find_if(declared.begin(), declared.end(),
                           [&](const DeclaredInput& d) { return d.name == name; });
    if (it->declared) {
      if (auto why = misfit(*it, shape); !why.empty()) throw Error(why);
    }
    given[name] = shape;
  }
  std::vector<ExampleSlot> slots;
  std::map<std::string, int64_t> dims;  // N, T, ...: the sizes they take here
  for (const DeclaredInput& input : declared) {
    auto it = given.find(input.name);
    std::vector<int64_t> shape;
    if (it != given.end()) {
      shape = it->second;
    } else if (input.declared) {
      shape = declared_shape_at_one(input);
    } else if (input.has_default && slots.size() == given.size()) {
      break;  // this one and those after it keep their defaults
    } else {
      throw Error(
          fmt::format("missing input '{}': give its shape ({}=SHAPE)", input.name, input.name));
    }
    for (size_t k = 0; k < input.dims.size() && k < shape.size(); ++k) {
      if (input.dims[k].is_string()) dims.emplace(input.dims[k].get<std::string>(), shape[k]);
    }
    slots.push_back({input.name, shape, input.dtype, std::nullopt});
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    if (auto probe = Dim::parse(declared[i].probe)) slots[i].probe = probe->evaluate(dims);
  }
  return example_tensors(slots, at::make_generator<at::CPUGeneratorImpl>(seed));
}

BenchReport bench(torch::jit::Module module, const std::vector<torch::Tensor>& inputs,
                  const BenchOptions& options) {
  check_options(options);
  const int64_t rounds = std::min(options.rounds(), options.runs());
  const int64_t batch = inputs.empty() || inputs[0].dim() == 0 ? 1 : inputs[0].size(0);
  module.eval();
  torch::NoGradGuard no_grad;

  BenchReport report;
  report.threads = at::get_num_threads();
  report.runs = options.runs();
  report.warmup = options.warmup();
  report.rounds = rounds;
  const auto& schema = module.get_method("forward").function().getSchema();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name =
        i + 1 < schema.arguments().size() ? schema.arguments()[i + 1].name() : std::to_string(i);
    report.inputs.emplace_back(
        name, tensor_type_str(inputs[i].scalar_type(),
                              Shape(inputs[i].sizes().begin(), inputs[i].sizes().end())));
  }

  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  std::vector<std::string> described;
  for (const auto& [name, type] : report.inputs) described.push_back(name + ": " + type);
  const std::string context = fmt::format("running the model on {}", fmt::join(described, ", "));
  auto run_stitch = [&](int64_t runs) {
    std::vector<double> times;
    with_context(context, [&] {
      for (int64_t i = 0; i < runs; ++i) {
        const auto start = std::chrono::steady_clock::now();
        module.forward(args);
        times.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      }
    });
    return times;
  };
  bool peak_reset = false;
  bool peak_resettable = false;
  std::vector<Side> sides;
  sides.push_back({"stitch",
                   run_stitch,
                   [&](int64_t runs) {
                     if (!peak_reset) peak_resettable = reset_peak_rss();
                     peak_reset = true;
                     WorkerTimes t{run_stitch(runs), peak_rss_bytes(), !peak_resettable};
                     return t;
                   },
                   {}});

  std::unique_ptr<TempModelFile> temp_file;
  std::unique_ptr<PythonWorker> worker;
  if (options.compare_python()) {
    std::filesystem::path file = options.model_file();
    if (file.empty()) {
      temp_file = std::make_unique<TempModelFile>(module);
      file = temp_file->path();
    }
    const bool stitch_artifact = !stored_metadata(module).manifest_json.empty();
    worker = std::make_unique<PythonWorker>(python_interpreter(options), file, report.threads,
                                            inputs, stitch_artifact);
    report.python_torch = worker->torch_version();
    for (const char* name : {"python", "eager"}) {
      const std::string side = name;
      if (side == "eager" && !worker->has_eager()) continue;
      sides.push_back({side,
                       [&worker, side](int64_t runs) { worker->warmup(side, runs); },
                       [&worker, side](int64_t runs) { return worker->time(side, runs); },
                       {}});
    }
    report.eager_note = stitch_artifact ? worker->eager_note()
                                        : "no eager column: the model is not a stitch "
                                          "artifact, so it has no combined forward to run as "
                                          "Python";
  }

  for (auto& side : sides) side.warmup(options.warmup());
  BenchProgress progress;
  progress.rounds = rounds;
  for (const auto& side : sides) progress.sides.push_back({side.name, 0, options.runs(), 0.0});
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t runs = options.runs() / rounds + (round < options.runs() % rounds ? 1 : 0);
    progress.round = round + 1;
    for (size_t s = 0; s < sides.size(); ++s) {
      WorkerTimes t = sides[s].time(runs);
      auto& done = sides[s].done;
      done.times_ms.insert(done.times_ms.end(), t.times_ms.begin(), t.times_ms.end());
      done.peak_bytes = t.peak_bytes;
      done.peak_since_start = t.peak_since_start;
      progress.sides[s].runs_done = static_cast<int64_t>(done.times_ms.size());
      progress.sides[s].median_ms = median_of(done.times_ms);
      progress.round_done = s + 1 == sides.size();
      if (options.on_progress()) options.on_progress()(progress);
    }
  }
  for (auto& side : sides) {
    BenchStats stats = summarize(side.name, std::move(side.done.times_ms), batch);
    // The eager side runs in the python process: its peak is python's.
    if (side.name != "eager") {
      stats.peak_bytes = side.done.peak_bytes;
      stats.peak_since_start = side.done.peak_since_start;
    }
    report.sides.push_back(std::move(stats));
  }
  return report;
}

const BenchStats* BenchReport::find(const std::string& name) const {
  for (const auto& s : sides) {
    if (s.side == name) return &s;
  }
  return nullptr;
}

std::string BenchReport::table() const {
  std::vector<std::string> described;
  for (const auto& [name, type] : inputs) described.push_back(name + "=" + type);
  std::string out = fmt::format("stitch bench{}  input{} {}  threads {}  warm-up {}",
                                model.empty() ? "" : " " + model, inputs.size() == 1 ? "" : "s",
                                fmt::join(described, ", "), threads, warmup);
  if (sides.size() > 1) out += fmt::format("  {} rounds interleaved", rounds);
  out += "\n";
  const BenchStats* stitch = find("stitch");
  for (const auto& s : sides) {
    std::string peak;
    if (s.peak_bytes) {
      peak = fmt::format("  peak {:.0f} MiB{}", *s.peak_bytes / (1024.0 * 1024.0),
                         s.peak_since_start ? " (process lifetime)" : "");
    }
    std::string vs;
    if (auto r = ratio(stitch, &s); r && &s != stitch) {
      vs = fmt::format("  stitch/{} {:.2f}", s.side, *r);
    }
    out += fmt::format("{:<7}median {} ms  (min {}, max {}; {} runs)  {} samples/s{}{}\n", s.side,
                       ms_str(s.median_ms), ms_str(s.min_ms), ms_str(s.max_ms), s.runs(),
                       ms_str(s.samples_per_s), peak, vs);
  }
  if (!eager_note.empty()) out += "note: " + eager_note + "\n";
  return out;
}

std::string BenchReport::json() const {
  nlohmann::json j;
  j["model"] = model;
  j["inputs"] = nlohmann::json::array();
  for (const auto& [name, type] : inputs) j["inputs"].push_back({{"name", name}, {"type", type}});
  j["threads"] = threads;
  j["runs"] = runs;
  j["warmup"] = warmup;
  j["rounds"] = rounds;
  const BenchStats* stitch = find("stitch");
  for (const auto& s : sides) {
    nlohmann::json side = {{"median_ms", s.median_ms}, {"min_ms", s.min_ms},
                           {"max_ms", s.max_ms},       {"q1_ms", s.q1_ms},
                           {"q3_ms", s.q3_ms},         {"runs", s.runs()},
                           {"batch", s.batch},         {"samples_per_s", s.samples_per_s},
                           {"times_ms", s.times_ms}};
    side["peak_mib"] =
        s.peak_bytes ? nlohmann::json(*s.peak_bytes / (1024.0 * 1024.0)) : nlohmann::json(nullptr);
    side["peak_since_start"] = s.peak_since_start;
    j[s.side] = side;
    if (auto r = ratio(stitch, &s); r && &s != stitch) j["stitch_over_" + s.side] = *r;
  }
  if (!python_torch.empty()) j["python_torch"] = python_torch;
  if (!eager_note.empty()) j["eager_note"] = eager_note;
  return j.dump(2) + "\n";
}

}  // namespace stitch
