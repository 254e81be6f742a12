// stitch benchmarks (Google Benchmark). Not a test: bench/run.sh runs this
// binary and bench/python_baseline.py in interleaved rounds and turns the
// times into the ratios of BENCHMARKS.md.
//
// Scenarios:
//   resnet18_head  resnet18.pt cut at avgpool + head.pt, batch 1 and 8
//   chain_mlp      mlp_a.pt -> mlp_b.pt, batch 1 and 64
//   compose        two resnet18-sized models: load only, check, build,
//                  build + save, to get compose time beyond loading
//   late_fusion    resnet18 cut at avgpool on an image and mlp_a.pt on a
//                  [B, 64] vector, concatenated, then linear(.., 5); batch
//                  1 and 8, built with and without concurrent branches
//   cut_resnet18   resnet18.pt cut at layer3 vs the same prefix by hand
//                  (resnet18_prefix_layer3.pt: the children in order in a
//                  scripted nn.Module), batch 1 and 8
//   train_dual_encoder  one training step (stitch::TrainStep, the step
//                  `stitch train` runs) of resnet18 + a 2-layer transformer
//                  encoder with projection heads and the clip loss, batch 8
//   train_small_dual_encoder  the same step with two small towers (a
//                  2-conv CNN on 32x32 images, a width-64 transformer), batch 8
//   train_frozen_resnet18_head  one training step of frozen resnet18 + head,
//                  cross_entropy, batch 8
//   merge          `stitch merge resnet50.pt resnet50_b.pt` (load, check,
//                  average, save) against loading both and saving one
//
// `stitch_bench --peak-memory=frozen|trainable` instead runs three steps of
// the resnet18 + head training step (backbone frozen or not) and prints the
// peak resident memory of the steps as JSON (see bench/notes.md);
// `--peak-memory=merge` the peak of one merge of the two resnet50 files.
//
// For each forward scenario there are three variants:
//   artifact   the stitch artifact, saved to a file and loaded back with
//              torch::jit::load, as a user ships it
//   byhand     the same component files loaded with torch::jit::load and
//              called one after another from C++ (resnet18's children
//              conv1 .. avgpool, then the head), as the tests do
//   optimized  the artifact as `stitch compose --optimize` writes it
//              (stitch::fold_weights), saved and loaded back
//
// Environment: STITCH_BENCH_FIXTURES (the folder make_fixtures.py wrote;
// default: the one CMake generated), STITCH_BENCH_OUT (where artifacts are
// written, and where bench/make_bench_models.py wrote its models; default:
// <fixtures>/../bench_artifacts), STITCH_THREADS (intra-op threads; default:
// every usable core, via stitch::set_threads()).

#include <benchmark/benchmark.h>
#include <stitch/stitch.h>
#include <torch/script.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

fs::path fixtures_dir() {
  if (const char* env = std::getenv("STITCH_BENCH_FIXTURES")) return env;
  return STITCH_BENCH_FIXTURES;
}

fs::path out_dir() {
  fs::path dir;
  if (const char* env = std::getenv("STITCH_BENCH_OUT")) {
    dir = env;
  } else {
    dir = fixtures_dir().parent_path() / "bench_artifacts";
  }
  fs::create_directories(dir);
  return dir;
}

fs::path fixture(const std::string& name) {
  return fixtures_dir() / name;
}

/// A model bench/make_bench_models.py exported.
fs::path bench_model(const std::string& name) {
  const fs::path file = out_dir() / name;
  if (!fs::exists(file)) {
    throw std::runtime_error(file.string() +
                             " is missing: run /usr/bin/python3 "
                             "bench/make_bench_models.py FIXTURES " +
                             out_dir().string());
  }
  return file;
}

torch::jit::Module load_eval(const fs::path& file) {
  auto m = torch::jit::load(file.string());
  m.eval();
  return m;
}

// ---------------------------------------------------------------- models

/// Builds the artifact with the C++ API, saves it (so Python times the very
/// same file) and loads it back.
torch::jit::Module build_resnet_artifact() {
  stitch::Graph g;
  auto image = g.input("image", {stitch::N, 3, 224, 224});
  auto vision = stitch::load(fixture("resnet18.pt")).name("vision").cut("avgpool");
  auto head = stitch::load(fixture("head.pt")).name("head");
  g.output("logits", head(vision(image)));
  const fs::path file = out_dir() / "resnet18_head.pt";
  stitch::save(g.build(), file);
  return load_eval(file);
}

torch::jit::Module build_mlp_artifact() {
  stitch::Graph g;
  auto x = g.input("x", {stitch::N, 64});
  auto a = stitch::load(fixture("mlp_a.pt"));
  auto b = stitch::load(fixture("mlp_b.pt"));
  g.output("y", b(a(x)));
  const fs::path file = out_dir() / "chain_mlp.pt";
  stitch::save(g.build(), file);
  return load_eval(file);
}

/// resnet18 (cut at avgpool) and mlp_a side by side, then one linear layer:
/// the late fusion of issue 7, saved as late_fusion.pt and, with concurrent
/// branches, late_fusion_concurrent.pt.
torch::jit::Module build_late_fusion(bool concurrent) {
  stitch::Graph g;
  auto image = g.input("image", {stitch::N, 3, 224, 224});
  auto features = g.input("features", {stitch::N, 64});
  auto vision = stitch::load(fixture("resnet18.pt")).name("vision").cut("avgpool");
  auto tabular = stitch::load(fixture("mlp_a.pt")).name("tabular");
  auto fused = stitch::concat({stitch::flatten(vision(image)), tabular(features)}, 1);
  g.output("logits", stitch::linear(fused, 5));
  const fs::path file = out_dir() / (concurrent ? "late_fusion_concurrent.pt" : "late_fusion.pt");
  stitch::save(stitch::build(g, stitch::BuildOptions().concurrent(concurrent)), file);
  return load_eval(file);
}

stitch::Graph two_resnets() {
  stitch::Graph g;
  auto image = g.input("image", {stitch::N, 3, 224, 224});
  auto a = stitch::load(fixture("resnet18.pt")).name("a").cut("avgpool");
  auto b = stitch::load(fixture("resnet18_b.pt")).name("b").cut("avgpool");
  g.output("features", stitch::concat({a(image), b(image)}, 1));
  return g;
}

/// Two resnet18 side by side (the compose scenario's graph): the case where
/// concurrent branches have the most to gain, two branches of equal work.
torch::jit::Module build_two_resnets(bool concurrent) {
  auto g = two_resnets();
  return stitch::build(g, stitch::BuildOptions().concurrent(concurrent));
}

torch::jit::Module build_cut_artifact() {
  stitch::Graph g;
  auto image = g.input("image", {stitch::N, 3, 224, 224});
  auto trunk = stitch::load(fixture("resnet18.pt")).name("trunk").cut("layer3");
  g.output("features", trunk(image));
  const fs::path file = out_dir() / "cut_resnet18.pt";
  stitch::save(g.build(), file);
  return load_eval(file);
}

/// The artifact as `stitch compose --optimize` writes it (fold_weights),
/// saved and loaded back.
torch::jit::Module optimized(const torch::jit::Module& m, const std::string& name) {
  const fs::path file = out_dir() / (name + "_optimized.pt");
  stitch::save(stitch::fold_weights(m), file);
  return load_eval(file);
}

/// Every module used by the forward benchmarks, built once per process.
struct Models {
  torch::jit::Module resnet_artifact, resnet_optimized, resnet, head;
  torch::jit::Module mlp_artifact, mlp_optimized, mlp_a, mlp_b;
  torch::jit::Module fusion, fusion_concurrent, two, two_concurrent;
  torch::jit::Module cut_artifact, cut_by_hand;

  static Models& get() {
    static Models* models = [] {
      auto* m = new Models;
      m->resnet_artifact = build_resnet_artifact();
      m->resnet_optimized = optimized(m->resnet_artifact, "resnet18_head");
      m->resnet = load_eval(fixture("resnet18.pt"));
      m->head = load_eval(fixture("head.pt"));
      m->mlp_artifact = build_mlp_artifact();
      m->mlp_optimized = optimized(m->mlp_artifact, "chain_mlp");
      m->mlp_a = load_eval(fixture("mlp_a.pt"));
      m->mlp_b = load_eval(fixture("mlp_b.pt"));
      m->fusion = build_late_fusion(false);
      m->fusion_concurrent = build_late_fusion(true);
      m->two = build_two_resnets(false);
      m->two_concurrent = build_two_resnets(true);
      m->cut_artifact = build_cut_artifact();
      m->cut_by_hand = load_eval(bench_model("resnet18_prefix_layer3.pt"));
      return m;
    }();
    return *models;
  }
};

// ---------------------------------------------------------------- forward

const char* const kResnetChildren[] = {"conv1",  "bn1",    "relu",   "maxpool", "layer1",
                                       "layer2", "layer3", "layer4", "avgpool"};

torch::Tensor resnet_by_hand(Models& m, const torch::Tensor& image) {
  torch::Tensor x = image;
  for (const char* name : kResnetChildren) {
    x = m.resnet.attr(name).toModule().forward({x}).toTensor();
  }
  return m.head.forward({x}).toTensor();
}

torch::Tensor mlp_by_hand(Models& m, const torch::Tensor& x) {
  return m.mlp_b.forward({m.mlp_a.forward({x}).toTensor()}).toTensor();
}

enum Variant { kArtifact = 0, kByHand = 1, kOptimized = 2, kConcurrent = 3, kTrainStep = 4 };

const char* label(Variant v) {
  switch (v) {
    case kArtifact:
      return "artifact";
    case kByHand:
      return "byhand";
    case kOptimized:
      return "optimized";
    case kConcurrent:
      return "concurrent";
    case kTrainStep:
      return "train_step";
  }
  return "?";
}

template <typename Fn>
void run_forward(benchmark::State& state, const char* scenario, Fn&& fn) {
  torch::NoGradGuard no_grad;
  // Warm-up, once per benchmark (the modules live for the whole process): the
  // profiling executor specializes a graph on its first runs.
  static std::set<std::string> warmed;
  const std::string key = std::string(scenario) + "/" + std::to_string(state.range(0)) + "/" +
                          std::to_string(state.range(1));
  if (warmed.insert(key).second) {
    for (int i = 0; i < 5; ++i) benchmark::DoNotOptimize(fn());
  }
  for (auto _ : state) {
    auto y = fn();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}

void BM_resnet18_head(benchmark::State& state) {
  auto& m = Models::get();
  const auto variant = static_cast<Variant>(state.range(0));
  const auto batch = state.range(1);
  auto image = torch::randn({batch, 3, 224, 224});
  state.SetLabel(label(variant));
  if (variant == kArtifact) {
    run_forward(state, __func__, [&] { return m.resnet_artifact.forward({image}).toTensor(); });
  } else if (variant == kByHand) {
    run_forward(state, __func__, [&] { return resnet_by_hand(m, image); });
  } else {
    run_forward(state, __func__, [&] { return m.resnet_optimized.forward({image}).toTensor(); });
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_chain_mlp(benchmark::State& state) {
  auto& m = Models::get();
  const auto variant = static_cast<Variant>(state.range(0));
  const auto batch = state.range(1);
  auto x = torch::randn({batch, 64});
  state.SetLabel(label(variant));
  if (variant == kArtifact) {
    run_forward(state, __func__, [&] { return m.mlp_artifact.forward({x}).toTensor(); });
  } else if (variant == kByHand) {
    run_forward(state, __func__, [&] { return mlp_by_hand(m, x); });
  } else {
    run_forward(state, __func__, [&] { return m.mlp_optimized.forward({x}).toTensor(); });
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_late_fusion(benchmark::State& state) {
  auto& m = Models::get();
  const auto variant = static_cast<Variant>(state.range(0));
  const auto batch = state.range(1);
  auto image = torch::randn({batch, 3, 224, 224});
  auto features = torch::randn({batch, 64});
  state.SetLabel(label(variant));
  auto& model = variant == kConcurrent ? m.fusion_concurrent : m.fusion;
  run_forward(state, __func__, [&] { return model.forward({image, features}).toTensor(); });
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_cut_resnet18(benchmark::State& state) {
  auto& m = Models::get();
  const auto variant = static_cast<Variant>(state.range(0));
  const auto batch = state.range(1);
  auto image = torch::randn({batch, 3, 224, 224});
  state.SetLabel(label(variant));
  auto& model = variant == kByHand ? m.cut_by_hand : m.cut_artifact;
  run_forward(state, __func__, [&] { return model.forward({image}).toTensor(); });
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_two_resnets(benchmark::State& state) {
  auto& m = Models::get();
  const auto variant = static_cast<Variant>(state.range(0));
  auto image = torch::randn({state.range(1), 3, 224, 224});
  state.SetLabel(label(variant));
  auto& model = variant == kConcurrent ? m.two_concurrent : m.two;
  run_forward(state, __func__, [&] { return model.forward({image}).toTensor(); });
}

BENCHMARK(BM_two_resnets)
    ->ArgNames({"variant", "batch"})
    ->ArgsProduct({{kArtifact, kConcurrent}, {1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_late_fusion)
    ->ArgNames({"variant", "batch"})
    ->ArgsProduct({{kArtifact, kConcurrent}, {1, 8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_cut_resnet18)
    ->ArgNames({"variant", "batch"})
    ->ArgsProduct({{kArtifact, kByHand}, {1, 8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_resnet18_head)
    ->ArgNames({"variant", "batch"})
    ->ArgsProduct({{kArtifact, kByHand, kOptimized}, {1, 8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_chain_mlp)
    ->ArgNames({"variant", "batch"})
    ->ArgsProduct({{kArtifact, kByHand, kOptimized}, {1, 64}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---------------------------------------------------------------- compose

/// Loading the two component files, nothing else: the part of compose that
/// any program using them pays anyway.
void BM_compose_load_only(benchmark::State& state) {
  for (auto _ : state) {
    auto a = torch::jit::load(fixture("resnet18.pt").string());
    auto b = torch::jit::load(fixture("resnet18_b.pt").string());
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
  }
}

/// stitch::check: loads both files (sha256, cut), probes them to propagate
/// shapes; no module is built.
void BM_compose_check(benchmark::State& state) {
  for (auto _ : state) {
    auto g = two_resnets();
    auto report = stitch::check(g);
    benchmark::DoNotOptimize(report);
  }
}

/// stitch::build: loads both files, cuts them, checks shapes (probe runs),
/// generates and compiles forward.
void BM_compose_build(benchmark::State& state) {
  for (auto _ : state) {
    auto g = two_resnets();
    auto model = g.build();
    benchmark::DoNotOptimize(model);
  }
}

/// build + stitch::save: what `stitch compose` does.
void BM_compose_build_save(benchmark::State& state) {
  const fs::path file = out_dir() / "two_resnets.pt";
  for (auto _ : state) {
    auto g = two_resnets();
    stitch::save(g.build(), file);
  }
}

/// `stitch compose` before #18: check (to print its table), then a build
/// that loaded, cut and probed every model again.
void BM_compose_cli_checking_twice(benchmark::State& state) {
  const fs::path file = out_dir() / "two_resnets.pt";
  for (auto _ : state) {
    auto g = two_resnets();
    auto report = stitch::check(g);
    stitch::save(stitch::build(g), file);
    benchmark::DoNotOptimize(report);
  }
}

/// `stitch compose` now: check, then build from its report (the models check
/// loaded), then save.
void BM_compose_cli(benchmark::State& state) {
  const fs::path file = out_dir() / "two_resnets.pt";
  for (auto _ : state) {
    auto g = two_resnets();
    auto report = stitch::check(g);
    stitch::save(stitch::build(g, report), file);
  }
}

BENCHMARK(BM_compose_load_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_cli_checking_twice)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_cli)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_check)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_build)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_build_save)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------- merges

fs::path resnet50(const char* name) {
  return out_dir() / name;
}

/// What `stitch merge resnet50.pt resnet50_b.pt -o merged.pt` does.
void BM_merge_merge(benchmark::State& state) {
  const fs::path file = out_dir() / "merged_resnet50.pt";
  for (auto _ : state) {
    stitch::save(stitch::merge({resnet50("resnet50.pt"), resnet50("resnet50_b.pt")}), file);
  }
}

/// The floor of any merge: load both files, save one.
void BM_merge_load_save(benchmark::State& state) {
  const fs::path file = out_dir() / "resaved_resnet50.pt";
  for (auto _ : state) {
    auto a = stitch::load_module(resnet50("resnet50.pt"));
    auto b = stitch::load_module(resnet50("resnet50_b.pt"));
    stitch::save(a, file);
    benchmark::DoNotOptimize(b);
  }
}

BENCHMARK(BM_merge_merge)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_merge_load_save)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------- training

/// Puts the fixtures and bench model folders into spec text.
std::string fmt_spec(std::string text) {
  for (const auto& [key, dir] :
       {std::pair<std::string, fs::path>{"@FIXTURES@", fixtures_dir()}, {"@OUT@", out_dir()}}) {
    for (size_t at; (at = text.find(key)) != std::string::npos;) {
      text.replace(at, key.size(), dir.string());
    }
  }
  return text;
}

/// A spec with a `train:` section; model paths are absolute. The data file
/// is never read: stitch::TrainStep gets its batches from here.
stitch::Spec train_spec(const std::string& text) {
  return stitch::parse_spec(text, out_dir() / "bench_train.yaml");
}

/// The `train:` section of both dual encoders: clip loss, AdamW.
constexpr const char* kClipTraining = R"(train:
  data: unused.pt
  loss: clip(img_emb, txt_emb, temperature=0.07)
  optimizer: adamw
  lr: 0.0001
)";

/// resnet18 + a 2-layer transformer encoder, projection heads into a shared
/// 64-dim space, clip loss (python_baseline.py's DualEncoder).
stitch::Spec dual_encoder_spec() {
  return train_spec(fmt_spec(R"(inputs:
  image: [N, 3, 224, 224]
  tokens: {shape: [N, 32], dtype: int64}
models:
  image_encoder: {file: "@FIXTURES@/resnet18.pt", cut: avgpool}
  text_encoder: {file: "@OUT@/text_encoder.pt"}
graph:
  - img_emb = l2norm(linear(flatten(image_encoder(image)), 64))
  - txt_emb = l2norm(linear(text_encoder(tokens), 64))
outputs: [img_emb, txt_emb]
)" + std::string(kClipTraining)));
}

/// Both towers small (python_baseline.py's small_dual_encoder_step): a
/// 2-conv CNN on 32x32 images and a width-64 transformer on 16 tokens,
/// projections into a shared 32-dim space. A step takes milliseconds, so
/// the per-operator cost of each side shows.
stitch::Spec small_dual_encoder_spec() {
  return train_spec(fmt_spec(R"(inputs:
  image: [N, 3, 32, 32]
  tokens: {shape: [N, 16], dtype: int64}
models:
  image_encoder: {file: "@OUT@/small_image_encoder.pt"}
  text_encoder: {file: "@OUT@/small_text_encoder.pt"}
graph:
  - img_emb = l2norm(linear(image_encoder(image), 32))
  - txt_emb = l2norm(linear(text_encoder(tokens), 32))
outputs: [img_emb, txt_emb]
)" + std::string(kClipTraining)));
}

/// resnet18 cut at avgpool (frozen, or trainable) + head.pt, cross_entropy
/// (python_baseline.py's frozen_step / trainable_step).
stitch::Spec resnet_head_spec(bool frozen) {
  std::string text = R"(inputs:
  image: [N, 3, 224, 224]
models:
  vision: {file: "@FIXTURES@/resnet18.pt", cut: avgpool@FREEZE@}
  head: {file: "@FIXTURES@/head.pt"}
graph:
  - logits = head(vision(image))
outputs: [logits]
train:
  data: unused.pt
  loss: cross_entropy(logits, labels)
  optimizer: adam
  lr: 0.001
)";
  const std::string freeze = frozen ? ", freeze: true" : "";
  text.replace(text.find("@FREEZE@"), 8, freeze);
  return train_spec(fmt_spec(text));
}

std::map<std::string, torch::Tensor> dual_encoder_batch(int64_t batch, int64_t image_size,
                                                        int64_t tokens) {
  return {{"image", torch::randn({batch, 3, image_size, image_size})},
          {"tokens", torch::randint(0, 1000, {batch, tokens}, torch::kLong)}};
}

std::map<std::string, torch::Tensor> classifier_batch(int64_t batch) {
  return {{"image", torch::randn({batch, 3, 224, 224})},
          {"labels", torch::randint(0, 5, {batch}, torch::kLong)}};
}

void run_steps(benchmark::State& state, stitch::TrainStep& step,
               const std::map<std::string, torch::Tensor>& batch) {
  for (int i = 0; i < 2; ++i) step(batch);  // warm-up: the profiling executor
  for (auto _ : state) benchmark::DoNotOptimize(step(batch));
  state.SetItemsProcessed(state.iterations() * batch.at("image").size(0));
}

void BM_train_dual_encoder(benchmark::State& state) {
  static const stitch::Spec spec = dual_encoder_spec();
  static stitch::TrainStep step(spec);
  state.SetLabel(label(kTrainStep));
  run_steps(state, step, dual_encoder_batch(state.range(1), 224, 32));
}

void BM_train_small_dual_encoder(benchmark::State& state) {
  static const stitch::Spec spec = small_dual_encoder_spec();
  static stitch::TrainStep step(spec);
  state.SetLabel(label(kTrainStep));
  run_steps(state, step, dual_encoder_batch(state.range(1), 32, 16));
}

void BM_train_frozen_resnet18_head(benchmark::State& state) {
  static const stitch::Spec spec = resnet_head_spec(/*frozen=*/true);
  static stitch::TrainStep step(spec);
  state.SetLabel(label(kTrainStep));
  run_steps(state, step, classifier_batch(state.range(1)));
}

BENCHMARK(BM_train_dual_encoder)
    ->ArgNames({"variant", "batch"})
    ->Args({kTrainStep, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_train_small_dual_encoder)
    ->ArgNames({"variant", "batch"})
    ->Args({kTrainStep, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_train_frozen_resnet18_head)
    ->ArgNames({"variant", "batch"})
    ->Args({kTrainStep, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

/// kB of a /proc/self/status field (VmRSS, VmHWM).
long status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

/// One merge of the two resnet50 files: the peak resident memory beyond
/// what the process held before, against the size of one model's file.
int merge_peak_memory() {
  const fs::path a = resnet50("resnet50.pt"), b = resnet50("resnet50_b.pt");
  stitch::save(stitch::load_module(a), out_dir() / "warm_up.pt");  // LibTorch's own start-up
  std::ofstream("/proc/self/clear_refs") << "5";
  const long before = status_kb("VmRSS");
  stitch::save(stitch::merge({a, b}), out_dir() / "merged_resnet50.pt");
  const long peak = status_kb("VmHWM");
  std::cout << "{\"mode\": \"merge\", \"rss_before_kb\": " << before << ", \"peak_kb\": " << peak
            << ", \"model_kb\": " << fs::file_size(a) / 1024 << "}\n";
  return 0;
}

/// Three training steps of resnet18 + head at batch 8, after one warm-up
/// step; prints the peak resident memory during them and the resident
/// memory before them. The peak is reset by writing 5 to
/// /proc/self/clear_refs, so model loading and the warm-up do not count.
int peak_memory(const std::string& mode) {
  if (mode == "merge") return merge_peak_memory();
  if (mode != "frozen" && mode != "trainable") {
    std::cerr << "error: --peak-memory takes frozen, trainable or merge\n";
    return 2;
  }
  const stitch::Spec spec = resnet_head_spec(mode == "frozen");
  stitch::TrainStep step(spec);
  const auto batch = classifier_batch(8);
  step(batch);
  std::ofstream("/proc/self/clear_refs") << "5";
  const long before = status_kb("VmRSS");
  for (int i = 0; i < 3; ++i) step(batch);
  const long peak = status_kb("VmHWM");
  std::cout << "{\"mode\": \"" << mode << "\", \"rss_before_kb\": " << before
            << ", \"peak_kb\": " << peak << "}\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string peak_flag = "--peak-memory=";
  if (argc == 2 && std::string(argv[1]).rfind(peak_flag, 0) == 0) {
    stitch::set_threads();
    try {
      return peak_memory(std::string(argv[1]).substr(peak_flag.size()));
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  const int threads = stitch::set_threads();
  benchmark::AddCustomContext("intra_op_threads", std::to_string(threads));
  benchmark::AddCustomContext("fixtures", fixtures_dir().string());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
