// stitch benchmarks (Google Benchmark). Not a test: bench/run.sh runs this
// binary and bench/python_baseline.py in interleaved rounds and turns the
// times into the ratios of BENCHMARKS.md.
//
// Scenarios:
//   resnet18_head  resnet18.pt cut at avgpool + head.pt, batch 1 and 8
//   chain_mlp      mlp_a.pt -> mlp_b.pt, batch 1 and 64
//   compose        two resnet18-sized models: load only, check, build,
//                  build + save, to get compose time beyond loading
//
// For each forward scenario there are three variants:
//   artifact   the stitch artifact, saved to a file and loaded back with
//              torch::jit::load, as a user ships it
//   byhand     the same component files loaded with torch::jit::load and
//              called one after another from C++ (resnet18's children
//              conv1 .. avgpool, then the head), as the tests do
//   optimized  the artifact after torch::jit::freeze +
//              torch::jit::optimize_for_inference (reference for issue 7;
//              stitch has no --optimize of its own yet)
//
// Environment: STITCH_BENCH_FIXTURES (the folder make_fixtures.py wrote;
// default: the one CMake generated), STITCH_BENCH_OUT (where artifacts are
// written; default: <fixtures>/../bench_artifacts), STITCH_THREADS (intra-op
// threads; default: every usable core, via stitch::set_threads()).

#include <stitch/stitch.h>

#include <benchmark/benchmark.h>
#include <torch/script.h>

#include <cstdlib>
#include <filesystem>
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

fs::path fixture(const std::string& name) { return fixtures_dir() / name; }

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

torch::jit::Module optimized(const torch::jit::Module& m) {
  auto frozen = torch::jit::freeze(m);
  return torch::jit::optimize_for_inference(frozen);
}

/// Every module used by the forward benchmarks, built once per process.
struct Models {
  torch::jit::Module resnet_artifact, resnet_optimized, resnet, head;
  torch::jit::Module mlp_artifact, mlp_optimized, mlp_a, mlp_b;

  static Models& get() {
    static Models* models = [] {
      auto* m = new Models;
      m->resnet_artifact = build_resnet_artifact();
      m->resnet_optimized = optimized(m->resnet_artifact);
      m->resnet = load_eval(fixture("resnet18.pt"));
      m->head = load_eval(fixture("head.pt"));
      m->mlp_artifact = build_mlp_artifact();
      m->mlp_optimized = optimized(m->mlp_artifact);
      m->mlp_a = load_eval(fixture("mlp_a.pt"));
      m->mlp_b = load_eval(fixture("mlp_b.pt"));
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

enum Variant { kArtifact = 0, kByHand = 1, kOptimized = 2 };

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
  state.SetLabel(variant == kArtifact ? "artifact" : variant == kByHand ? "byhand" : "optimized");
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
  state.SetLabel(variant == kArtifact ? "artifact" : variant == kByHand ? "byhand" : "optimized");
  if (variant == kArtifact) {
    run_forward(state, __func__, [&] { return m.mlp_artifact.forward({x}).toTensor(); });
  } else if (variant == kByHand) {
    run_forward(state, __func__, [&] { return mlp_by_hand(m, x); });
  } else {
    run_forward(state, __func__, [&] { return m.mlp_optimized.forward({x}).toTensor(); });
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

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

stitch::Graph two_resnets() {
  stitch::Graph g;
  auto image = g.input("image", {stitch::N, 3, 224, 224});
  auto a = stitch::load(fixture("resnet18.pt")).name("a").cut("avgpool");
  auto b = stitch::load(fixture("resnet18_b.pt")).name("b").cut("avgpool");
  g.output("features", stitch::concat({a(image), b(image)}, 1));
  return g;
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

BENCHMARK(BM_compose_load_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_check)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_build)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_compose_build_save)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
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
